"""What each MLflow run of a protocol execution contains, computed from results data alone.

Pure: no MLflow, no network. Every value (timestamps included) derives from the
results record, so logging the same trial twice produces identical requests and a
replay after a crash or an outage is byte-for-byte the same run.
"""

from __future__ import annotations

import copy
import hashlib
import json
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audit.tracking.datasets import data_inputs
from audit.tracking.record import DatasetRef

TRIAL_KEY_TAG = "mlaudit.trial_key"
EXECUTION_KEY_TAG = "mlaudit.execution_key"
ROLE_TAG = "mlaudit.role"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
# A trial whose metric source is its own MLflow run (kind mlflow) carries this tag from
# creation: the store leaves such a run open when the trial's script ends it, and
# seals it when mlaudit ends it with its outcome (the tag TRIAL_STATUS_TAG).
METRICS_SOURCE_TAG = "mlaudit.trial.metrics_source"
METRICS_SOURCE_SHA256_TAG = "mlaudit.trial.metrics_source.sha256"
TRIAL_STATUS_TAG = "mlaudit.trial.status"
IN_TRIAL_RUN = "mlflow"
REPRODUCIBILITY_ROLE = "reproducibility"

# MLflow's per-value limits (mlflow.utils.validation); checked here so a bad value is
# reported with its trial and key, not as a server 400 half-way through a run.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250

TRIAL_STATUS_TO_RUN_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "timeout": "KILLED"}


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True)
class RunSpec:
    """One MLflow run to create (or find) and fill: the unit of exactly-once logging."""

    key: str
    key_tag: str
    name: str
    start_time: int
    end_time: int
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[MetricPoint]
    # artifact path inside the run -> bytes or a local file
    artifacts: dict[str, bytes | Path] = field(default_factory=dict)
    label: str = ""
    # The data the study read (audit.tracking.datasets), logged before the run ends.
    datasets: tuple[DatasetRef, ...] = ()


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    import rfc8785

    return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]


def to_millis(stamp: str | None) -> int | None:
    """ISO 8601 (a trailing Z allowed) -> ms since the epoch; None stays None."""
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError as error:
        from audit.errors import InputError

        raise InputError(f"{stamp!r} is not an ISO 8601 time ({error})") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return round(parsed.timestamp() * 1000)


def plan_fingerprint(header: Mapping[str, Any]) -> str:
    """What makes two executions the same: the plan (minus the shard) and the provenance."""
    plan = {k: v for k, v in dict(header.get("plan") or {}).items() if k != "shard"}
    provenance = (header.get("provenance") or {}).get("fingerprint")
    # A logger asks three times per trial about the same header, and canonicalising a
    # large plan (a 10,000-trial study lists 1,000 seeds) costs most of a millisecond.
    # The last answer is reused for the same header object whose plan still compares
    # equal to a private copy (so a header changed in place is fingerprinted again).
    global _LAST_FINGERPRINT  # one slot, replaced whole: safe across threads
    last = _LAST_FINGERPRINT
    if last is not None and last[0] is header and last[1] == [plan, provenance]:
        return last[2]
    fingerprint = _sha256_hex(canonical_json([plan, provenance]))
    _LAST_FINGERPRINT = (header, copy.deepcopy([plan, provenance]), fingerprint)
    return fingerprint


# (header, a deep copy of its plan and provenance fingerprint, the plan fingerprint)
_LAST_FINGERPRINT: tuple[Mapping[str, Any], list[Any], str] | None = None


def execution_key(header: Mapping[str, Any]) -> str:
    edd = header.get("edd") or {}
    return _sha256_hex(canonical_json(["execution", edd.get("digest"), plan_fingerprint(header)]))


def trial_key(header: Mapping[str, Any], arm: str, seed: int) -> str:
    edd = header.get("edd") or {}
    return _sha256_hex(
        canonical_json(["trial", edd.get("digest"), plan_fingerprint(header), arm, int(seed)])
    )


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    elif prefix:
        out[prefix] = value


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _override_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def resolved_config(header: Mapping[str, Any], trial: Mapping[str, Any]) -> dict[str, str]:
    """The trial's configuration as flat params: EDD baseline with the arm's overrides applied.

    A trial may carry its own resolved `config` (the engine knows it best); otherwise
    the Hydra-style `key=value` overrides of its arm are applied to the baseline.
    """
    flat: dict[str, Any] = {}
    if isinstance(trial.get("config"), Mapping):
        _flatten(trial["config"], "", flat)
        return {k: _param_text(v) for k, v in flat.items()}
    document = (header.get("edd") or {}).get("document") or {}
    _flatten((document.get("protocol") or {}).get("baseline") or {}, "", flat)
    arm = _find_arm(header, str(trial.get("arm")))
    for override in (arm or {}).get("overrides") or []:
        key, sep, text = str(override).partition("=")
        key = key.lstrip("+")
        if key.startswith("~"):
            flat.pop(key[1:], None)
        elif sep:
            flat[key] = _override_value(text)
    return {k: _param_text(v) for k, v in flat.items()}


def _find_arm(header: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for arm in (header.get("plan") or {}).get("arms") or []:
        if arm.get("name") == name:
            return arm  # type: ignore[no-any-return]
    return None


def _put(target: dict[str, str], key: str, value: Any, limit: int, what: str, label: str) -> None:
    from audit.errors import InputError

    if value is None:
        return
    text = _param_text(value)
    if len(key) > MAX_KEY:
        raise InputError(f"{label}: {what} key {key[:40]!r}... is longer than {MAX_KEY} characters")
    if len(text) > limit:
        raise InputError(f"{label}: {what} {key!r} is longer than MLflow's {limit} characters")
    target[key] = text


def _metric_points(trial: Mapping[str, Any], at: int) -> list[MetricPoint]:
    """Histories when the trial has them (`metric_history`), else each final value at step 0.

    None for a trial that logged into its own run (metric source mlflow): the run
    already holds every point, and logging the final values again would add points.
    """
    if (trial.get("metric_source") or {}).get("kind") == IN_TRIAL_RUN:
        return []
    histories = trial.get("metric_history") or {}
    points: list[MetricPoint] = []
    for key, history in sorted(histories.items()):
        for i, point in enumerate(history):
            step = int(point.get("step", i))
            stamp = point.get("timestamp")
            points.append(
                MetricPoint(str(key), float(point["value"]), int(stamp) if stamp else at, step)
            )
    for key, value in sorted((trial.get("metrics") or {}).items()):
        if key not in histories and isinstance(value, (int, float)) and not isinstance(value, bool):
            points.append(MetricPoint(str(key), float(value), at, 0))
    return points


def _common_tags(header: Mapping[str, Any]) -> dict[str, Any]:
    edd = header.get("edd") or {}
    git = (header.get("provenance") or {}).get("git") or {}
    return {
        "mlaudit.edd.id": edd.get("id"),
        "mlaudit.edd.version": edd.get("version"),
        "mlaudit.edd.digest": edd.get("digest"),
        GIT_COMMIT_TAG: git.get("commit"),
        EXECUTION_KEY_TAG: execution_key(header),
    }


def _times(header: Mapping[str, Any], trial: Mapping[str, Any]) -> tuple[int, int]:
    start = to_millis(trial.get("started_at")) or to_millis(header.get("created_at")) or 0
    end = to_millis(trial.get("finished_at"))
    if end is None:
        duration = trial.get("duration_seconds")
        end = start + round(float(duration) * 1000) if duration else start
    return start, max(start, end)


def _data_tag(provenance: Mapping[str, Any], key: str) -> str:
    """`mlaudit.dvc.<path>`, `mlaudit.lfs.<path>` or `mlaudit.lakefs.<repo/ref/path>`.

    MLflow refuses a tag key that normalises to another path (`a/`, `a//b`).
    """
    pins = provenance.get("data_pins") or {}
    kind = "dvc"
    if any(p.get("path") == key for p in pins.get("git_lfs") or []):
        kind = "lfs"
    elif any(p.get("uri") == key for p in pins.get("lakefs") or []):
        kind, key = "lakefs", key.removeprefix("lakefs://")
    return f"mlaudit.{kind}.{posixpath.normpath(key)}"


def _foreign_tags(trial: Mapping[str, Any]) -> dict[str, Any]:
    """The W&B / ClearML runs the trial made itself: `mlaudit.foreign.<tool>` = ids."""
    runs = trial.get("foreign_runs") or {}
    return {
        f"mlaudit.foreign.{tool}": ",".join(str(i) for i in ids)
        for tool, ids in sorted(runs.items())
        if isinstance(ids, list) and ids
    }


def trial_run(
    header: Mapping[str, Any],
    trial: Mapping[str, Any],
    trial_files: Iterable[tuple[str, Path]] = (),
) -> RunSpec | None:
    """The child run of one trial; None for a trial that never ran (nothing to record)."""
    status = TRIAL_STATUS_TO_RUN_STATUS.get(str(trial.get("status")))
    if status is None:
        return None
    arm, seed = str(trial["arm"]), int(trial["seed"])
    trial_id = str(trial.get("trial_id") or f"{arm}/{seed}")
    label = f"trial {trial_id}"
    key = trial_key(header, arm, seed)
    start, end = _times(header, trial)
    params: dict[str, str] = {}
    for name, value in resolved_config(header, trial).items():
        _put(params, name, value, MAX_PARAM_VALUE, "param", label)
    _put(params, "arm", arm, MAX_PARAM_VALUE, "param", label)
    _put(params, "seed", seed, MAX_PARAM_VALUE, "param", label)
    tags: dict[str, str] = {}
    source = trial.get("metric_source") or {}
    for name, value in {
        **_static_trial_tags(header, arm, seed, trial_id),
        METRICS_SOURCE_TAG: source.get("kind"),
        METRICS_SOURCE_SHA256_TAG: source.get("sha256"),
        TRIAL_STATUS_TAG: trial.get("status"),
        "mlaudit.trial.attempts": trial.get("attempts"),
        "mlaudit.trial.exit_code": trial.get("exit_code"),
        "mlaudit.trial.reason": trial.get("reason"),
        "mlaudit.trial.fingerprint": trial.get("fingerprint"),
        "mlaudit.trial.cached_from": trial.get("cached_from"),
        "mlaudit.trial.shard": trial.get("shard"),
        **_foreign_tags(trial),
    }.items():
        _put(tags, name, value, MAX_TAG_VALUE, "tag", label)
    artifacts: dict[str, bytes | Path] = {
        f"trial/{name}": path for name, path in sorted(trial_files)
    }
    return RunSpec(
        key=key,
        key_tag=TRIAL_KEY_TAG,
        name=trial_id,
        start_time=start,
        end_time=end,
        status=status,
        params=params,
        tags=tags,
        metrics=_metric_points(trial, end),
        artifacts=artifacts,
        label=label,
        datasets=data_inputs(header.get("provenance") or {}),
    )


def _static_trial_tags(
    header: Mapping[str, Any], arm: str, seed: int, trial_id: str, key: str | None = None
) -> dict[str, Any]:
    """The tags a trial run has from its creation: who it is, not how it went."""
    arm_info = _find_arm(header, arm) or {}
    return {
        **_common_tags(header),
        TRIAL_KEY_TAG: key or trial_key(header, arm, seed),
        ROLE_TAG: "trial",
        RUN_NAME_TAG: trial_id,
        "mlaudit.trial_id": trial_id,
        "mlaudit.arm": arm,
        "mlaudit.arm.kind": arm_info.get("kind"),
        "mlaudit.arm.component": arm_info.get("component"),
        "mlaudit.arm.config_sha256": arm_info.get("config_sha256"),
        "mlaudit.seed": seed,
    }


def rerun_key(header: Mapping[str, Any], arm: str, seed: int) -> str:
    """The determinism re-run's own run: a trial logging into its run needs a fresh one."""
    return _sha256_hex(canonical_json(["reproducibility", trial_key(header, arm, seed)]))


def in_trial_run(
    header: Mapping[str, Any], arm: str, seed: int, start_time: int, *, rerun: bool = False
) -> RunSpec:
    """The run a trial logs into itself (metric source mlflow), opened before it starts.

    Only who the trial is: its outcome, params and files are logged when it ends
    (trial_run), under the same key, before mlaudit ends and seals the run. The
    determinism re-run gets a run of its own (role reproducibility, its own key).
    """
    trial_id = f"{arm}/{seed}"
    key = rerun_key(header, arm, seed) if rerun else trial_key(header, arm, seed)
    label = f"{'re-run of ' if rerun else ''}trial {trial_id}"
    values = _static_trial_tags(header, arm, seed, trial_id, key)
    values[METRICS_SOURCE_TAG] = IN_TRIAL_RUN
    if rerun:
        values[ROLE_TAG] = REPRODUCIBILITY_ROLE
        values[RUN_NAME_TAG] = f"{trial_id} (re-run)"
    tags: dict[str, str] = {}
    for name, value in values.items():
        _put(tags, name, value, MAX_TAG_VALUE, "tag", label)
    return RunSpec(
        key=key,
        key_tag=TRIAL_KEY_TAG,
        name=tags[RUN_NAME_TAG],
        start_time=start_time,
        end_time=start_time,
        status="RUNNING",
        params={},
        tags=tags,
        metrics=[],
        label=label,
    )


def parent_key(header: Mapping[str, Any]) -> str:
    return execution_key(header)


def parent_run(
    header: Mapping[str, Any],
    results: Mapping[str, Any] | None = None,
    analysis: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, Path] | None = None,
    first_trials: Iterable[Mapping[str, Any]] = (),
) -> RunSpec:
    """The parent run of one protocol execution: provenance as tags, evidence as artifacts.

    `first_trials` date the run when it is opened before results exist (the logger of a
    running protocol opens it with the first finished trial).
    """
    edd = header.get("edd") or {}
    provenance = header.get("provenance") or {}
    environment = provenance.get("environment") or {}
    git = provenance.get("git") or {}
    plan = header.get("plan") or {}
    trust = header.get("trust") or {}
    label = f"execution of {edd.get('id')}"
    approvals = header.get("approvals") or []
    approvals_text = json.dumps(
        [[a.get("principal"), a.get("role"), a.get("verdict")] for a in approvals],
        separators=(",", ":"),
    )
    tags: dict[str, str] = {}
    values: dict[str, Any] = {
        **_common_tags(header),
        ROLE_TAG: "execution",
        RUN_NAME_TAG: f"{edd.get('id')} v{edd.get('version')}",
        "mlaudit.approvals": approvals_text if len(approvals_text) <= MAX_TAG_VALUE else None,
        "mlaudit.approvals.count": len(approvals),
        "mlaudit.git.tree": git.get("tree"),
        "mlaudit.git.dirty": git.get("dirty"),
        "mlaudit.dvc.status_clean": provenance.get("dvc_status_clean"),
        "mlaudit.provenance.fingerprint": provenance.get("fingerprint"),
        "mlaudit.image.digest": environment.get("image_digest"),
        "mlaudit.env.python": environment.get("python"),
        "mlaudit.env.platform": environment.get("platform"),
        "mlaudit.env.distributions_sha256": environment.get("distributions_sha256"),
        "mlaudit.env.lock_file": environment.get("lock_file"),
        "mlaudit.env.lock_sha256": environment.get("lock_sha256"),
        "mlaudit.plan.design": plan.get("design"),
        "mlaudit.plan.trial_count": plan.get("trial_count"),
        "mlaudit.plan.fingerprint": plan_fingerprint(header),
        "mlaudit.trust.ref": trust.get("ref"),
        "mlaudit.trust.commit": trust.get("commit"),
    }
    for path, digest in sorted((provenance.get("data") or {}).items()):
        values[_data_tag(provenance, path)] = digest
    for name, value in values.items():
        _put(tags, name, value, MAX_TAG_VALUE, "tag", label)
    artifacts: dict[str, bytes | Path] = {
        "edd/edd.json": canonical_json(edd.get("document") or {}),
        "approvals/approvals.json": canonical_json(approvals),
        "results/results.json": canonical_json(dict(results if results is not None else header)),
    }
    if analysis is not None:
        artifacts["results/analysis.json"] = canonical_json(dict(analysis))
    if environment.get("distributions"):
        artifacts["environment/distributions.txt"] = (
            "\n".join(environment["distributions"]) + "\n"
        ).encode()
    for path, local in sorted((extra_files or {}).items()):
        artifacts[path] = local
    start, end = _execution_times(header, results, first_trials)
    return RunSpec(
        key=parent_key(header),
        key_tag=EXECUTION_KEY_TAG,
        name=tags[RUN_NAME_TAG],
        start_time=start,
        end_time=end,
        status="FINISHED",
        params={},
        tags=tags,
        metrics=[],
        artifacts=artifacts,
        label=label,
        datasets=data_inputs(provenance),
    )


def _execution_times(
    header: Mapping[str, Any],
    results: Mapping[str, Any] | None,
    first_trials: Iterable[Mapping[str, Any]],
) -> tuple[int, int]:
    """From the first trial's start to the results' creation (or the last trial's end)."""
    document = results if results is not None else header
    trials = [*first_trials, *(document.get("trials") or [])]
    starts = [to_millis(t.get("started_at")) for t in trials]
    ends = [to_millis(t.get("finished_at")) for t in trials]
    created = to_millis(document.get("created_at"))
    known_starts = [s for s in starts if s is not None]
    known_ends = [e for e in [*ends, created] if e is not None]
    start = min(known_starts) if known_starts else (created or 0)
    end = max(known_ends) if known_ends else start
    return start, max(start, end)


def sealed_trial_runs(
    results: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]]
) -> dict[str, str | None]:
    """trial id -> the sealed run holding it (None when no sealed run does).

    Trials are found by their idempotency key (EDD digest, plan, arm, seed), not by
    the run ids written into results.json: results collected from shards and logged
    afterwards with `track log` carry no run ids, and a run id alone would not prove
    that the sealed run belongs to this execution.
    """
    by_key = {
        str((record.get("tags") or {}).get(TRIAL_KEY_TAG)): run_id
        for run_id, record in records.items()
    }
    header = {k: v for k, v in results.items() if k != "trials"}
    found: dict[str, str | None] = {}
    for trial in results.get("trials", []):
        if trial.get("status") not in TRIAL_STATUS_TO_RUN_STATUS:
            continue
        trial_id = str(trial.get("trial_id") or f"{trial['arm']}/{trial['seed']}")
        run_id = by_key.get(trial_key(header, str(trial["arm"]), int(trial["seed"])))
        recorded = trial.get("mlflow_run_id")
        found[trial_id] = run_id if recorded in (None, run_id) else None
    return found


def sealed_execution_run(
    results: Mapping[str, Any], records: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """The sealed parent run of this execution, found by its idempotency key."""
    key = execution_key({k: v for k, v in results.items() if k != "trials"})
    for run_id, record in records.items():
        tags = record.get("tags") or {}
        if tags.get(EXECUTION_KEY_TAG) == key and tags.get(ROLE_TAG) == "execution":
            return run_id
    return None
