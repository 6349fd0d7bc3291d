"""The seal ledger of an experiment, rebuilt from the REST API, and its verification.

Everything is refetched through the tracking server's public API (the same view an
auditor has): runs page by page, metric histories in bulk (100 runs per request).
Each sealed run's canonical record is recomputed with audit.tracking.record and
compared with its seal; the seals in sequence order are the Merkle leaves (leaf data
= the 32-byte seal digest). Findings are data: each names the run, the sequence
number and, where it can be known, the field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from audit.errors import TrackingError, UsageError
from audit.findings import Finding
from audit.tracking import record as run_record
from audit.tracking.checkpoint import Checkpoint, origin_of
from audit.tracking.merkle import MerkleTree, verify_consistency, verify_inclusion

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

HISTORY_RUNS_PER_REQUEST = 100  # MLflow's limit for get-history-bulk
HISTORY_MAX_RESULTS = 25000  # and its cap on points per answer
HISTORY_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
# One page of runs = one history request per metric key (the bulk limit is 100 runs).
SEARCH_PAGE = HISTORY_RUNS_PER_REQUEST
PAGE_WORKERS = 6


@dataclass(frozen=True)
class Leaf:
    seq: int
    run_id: str
    sha256: str  # the seal as the server published it (tag mlaudit.seal.sha256)


@dataclass
class Ledger:
    """Sealed runs of one experiment in sequence order, with their recomputed records."""

    tracking_uri: str
    experiment_id: str
    leaves: list[Leaf]
    records: dict[str, bytes]  # run id -> canonical record recomputed from REST data
    runs: list[Run | RestRun] = field(default_factory=list, repr=False)
    histories: dict[str, dict[str, list[tuple[int, int, float]]]] = field(
        default_factory=dict, repr=False
    )
    _tree: MerkleTree | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return origin_of(self.tracking_uri, self.experiment_id)

    @property
    def tree(self) -> MerkleTree:
        if self._tree is None:
            self._tree = MerkleTree.build([bytes.fromhex(leaf.sha256) for leaf in self.leaves])
        return self._tree

    @property
    def size(self) -> int:
        return len(self.leaves)

    @property
    def root(self) -> str:
        return self.tree.root.hex()


# -- fetching ----------------------------------------------------------------------


def resolve_experiment(client: MlflowClient, experiment: str | None) -> str:
    """An experiment id from a name or id; without one, the only experiment with runs."""
    from audit.tracking.retry import RetryPolicy, call_with_retry

    return call_with_retry(
        lambda: _resolve_experiment(client, experiment), RetryPolicy(), describe="find experiment"
    )


def _resolve_experiment(client: MlflowClient, experiment: str | None) -> str:
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.get_experiment(experiment).experiment_id)
        except MlflowException:
            raise UsageError(f"no experiment named or numbered {experiment!r}") from None
    candidates = [
        e
        for e in client.search_experiments(view_type=ViewType.ALL)
        if client.search_runs([e.experiment_id], max_results=1, run_view_type=ViewType.ALL)
    ]
    if len(candidates) != 1:
        names = ", ".join(f"{e.name} ({e.experiment_id})" for e in candidates) or "none"
        raise UsageError(f"pass --experiment: experiments with runs: {names}")
    return str(candidates[0].experiment_id)


def fetch_histories(
    client: MlflowClient, runs: Sequence[Run | RestRun], workers: int = 8
) -> dict[str, dict[str, list[tuple[int, int, float]]]]:
    """Full metric histories of many runs: one bulk request per metric key and 100 runs."""
    by_key: dict[str, list[str]] = {}
    for run in runs:
        for key in run.data.metrics:
            by_key.setdefault(key, []).append(run.info.run_id)
    jobs = [
        (key, run_ids[i : i + HISTORY_RUNS_PER_REQUEST])
        for key, run_ids in sorted(by_key.items())
        for i in range(0, len(run_ids), HISTORY_RUNS_PER_REQUEST)
    ]
    histories: dict[str, dict[str, list[tuple[int, int, float]]]] = {}
    host_creds = client._tracking_client.store.get_host_creds()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for points in pool.map(lambda job: _bulk_history(host_creds, *job), jobs):
            for run_id, key, point in points:
                histories.setdefault(run_id, {}).setdefault(key, []).append(point)
    return histories


def _bulk_history(
    host_creds: Any, key: str, run_ids: list[str]
) -> list[tuple[str, str, tuple[int, int, float]]]:
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(  # type: ignore[no-untyped-call]
        host_creds,
        HISTORY_ENDPOINT,
        "GET",
        params={"run_id": run_ids, "metric_key": key, "max_results": HISTORY_MAX_RESULTS},
    )
    verify_rest_response(response, HISTORY_ENDPOINT)
    metrics = json.loads(response.text).get("metrics", [])
    if len(metrics) >= HISTORY_MAX_RESULTS:
        if len(run_ids) == 1:
            raise TrackingError(
                f"run {run_ids[0]}: metric {key!r} has more than {HISTORY_MAX_RESULTS} points"
            )
        # The answer was capped: ask again with half the runs each, until nothing is cut.
        half = len(run_ids) // 2
        return _bulk_history(host_creds, key, run_ids[:half]) + _bulk_history(
            host_creds, key, run_ids[half:]
        )
    return [
        (m["run_id"], key, (int(m.get("step", 0)), int(m.get("timestamp", 0)), _value(m)))
        for m in metrics
    ]


def _value(metric: Mapping[str, Any]) -> float:
    value = metric.get("value", 0.0)
    return float(value) if value is not None else float("nan")


@dataclass(frozen=True)
class RestRunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RestRunData:
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class RestTag:
    key: str
    value: str


@dataclass(frozen=True)
class RestDataset:
    name: str
    digest: str
    source_type: str
    source: str


@dataclass(frozen=True)
class RestDatasetInput:
    dataset: RestDataset
    tags: list[RestTag]


@dataclass(frozen=True)
class RestRunInputs:
    dataset_inputs: list[RestDatasetInput]


@dataclass(frozen=True)
class RestRun:
    """A run exactly as the REST API's JSON states it, with the attributes of
    `mlflow.entities.Run` that a record needs (the protobuf round trip of MlflowClient
    costs more than everything else verify does)."""

    info: RestRunInfo
    data: RestRunData
    inputs: RestRunInputs

    @classmethod
    def from_json(cls, run: Mapping[str, Any]) -> RestRun:
        info, data = run.get("info") or {}, run.get("data") or {}
        end_time = int(info.get("end_time") or 0)
        inputs = [
            RestDatasetInput(
                RestDataset(
                    str(d.get("dataset", {}).get("name", "")),
                    str(d.get("dataset", {}).get("digest", "")),
                    str(d.get("dataset", {}).get("source_type", "")),
                    str(d.get("dataset", {}).get("source", "")),
                ),
                [
                    RestTag(str(t.get("key", "")), str(t.get("value", "")))
                    for t in d.get("tags") or []
                ],
            )
            for d in (run.get("inputs") or {}).get("dataset_inputs") or []
        ]
        return cls(
            RestRunInfo(
                run_id=str(info.get("run_id") or info.get("run_uuid")),
                experiment_id=str(info.get("experiment_id", "")),
                run_name=str(info.get("run_name", "")),
                status=str(info.get("status", "RUNNING")),
                start_time=int(info.get("start_time") or 0),
                # As RunInfo.from_proto: a zero end time means none.
                end_time=end_time or None,
                artifact_uri=str(info.get("artifact_uri", "")),
                lifecycle_stage=str(info.get("lifecycle_stage", "active")),
            ),
            RestRunData(
                params={p["key"]: str(p.get("value", "")) for p in data.get("params") or []},
                tags={t["key"]: str(t.get("value", "")) for t in data.get("tags") or []},
                metrics={m["key"]: _value(m) for m in data.get("metrics") or []},
            ),
            RestRunInputs(inputs),
        )


SEARCH_ENDPOINT = "/api/2.0/mlflow/runs/search"


def search_pages(client: MlflowClient, experiment_id: str) -> Iterator[list[RestRun]]:
    """Every run of an experiment, all lifecycle stages, page by page from the JSON API."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    host_creds = client._tracking_client.store.get_host_creds()
    token: str | None = None
    while True:
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id],
            "run_view_type": "ALL",
            "max_results": SEARCH_PAGE,
        }
        if token:
            body["page_token"] = token
        response = http_request(host_creds, SEARCH_ENDPOINT, "POST", json=body)  # type: ignore[no-untyped-call]
        verify_rest_response(response, SEARCH_ENDPOINT)
        page = json.loads(response.text)
        yield [RestRun.from_json(run) for run in page.get("runs") or []]
        token = page.get("next_page_token")
        if not token:
            return


def search_runs_json(client: MlflowClient, experiment_id: str) -> list[RestRun]:
    return [run for page in search_pages(client, experiment_id) for run in page]


History = dict[str, list[tuple[int, int, float]]]


def _page_records(
    client: MlflowClient, page: list[RestRun]
) -> tuple[dict[str, History], dict[str, bytes]]:
    histories = fetch_histories(client, page, workers=1)
    records = {run.info.run_id: _record(run, histories.get(run.info.run_id, {})) for run in page}
    return histories, records


def fetch_ledger(client: MlflowClient, tracking_uri: str, experiment_id: str) -> Ledger:
    """Every run of the experiment (deleted ones too), histories, records, leaves.

    Pipelined: while the next page of runs is being listed, the histories of the
    pages already listed are fetched and their records recomputed, so listing,
    history requests and hashing overlap instead of adding up.
    """
    from audit.tracking.retry import RetryPolicy, call_with_retry

    policy = RetryPolicy()

    def fetch() -> tuple[list[RestRun], dict[str, History], dict[str, bytes]]:
        runs: list[RestRun] = []
        histories: dict[str, History] = {}
        records: dict[str, bytes] = {}
        with ThreadPoolExecutor(max_workers=PAGE_WORKERS) as pool:
            jobs = []
            for page in search_pages(client, experiment_id):
                runs.extend(page)
                jobs.append(pool.submit(_page_records, client, page))
            for job in jobs:
                page_histories, page_records = job.result()
                histories.update(page_histories)
                records.update(page_records)
        return runs, histories, records

    runs, histories, records = call_with_retry(fetch, policy, describe="fetch sealed runs")
    leaves: list[Leaf] = []
    for run in runs:
        tags = run.data.tags
        seq, sha = tags.get(run_record.SEAL_SEQ_TAG), tags.get(run_record.SEAL_SHA256_TAG)
        if seq is not None and sha is not None and seq.isdigit():
            leaves.append(Leaf(int(seq), run.info.run_id, sha))
    leaves.sort(key=lambda leaf: (leaf.seq, leaf.run_id))
    return Ledger(tracking_uri, experiment_id, leaves, records, list(runs), histories)


def _record(run: Run | RestRun, history: Mapping[str, list[tuple[int, int, float]]]) -> bytes:
    # A key listed in the run but absent from the bulk answer has an empty history.
    full = {key: history.get(key, []) for key in run.data.metrics}
    return run_record.record_bytes(run_record.record_input_from_run(run, full))


# -- checkpoints and proofs ----------------------------------------------------------


def take_checkpoint(
    ledger: Ledger, *, with_records: bool = False, now: datetime | None = None
) -> Checkpoint:
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    leaves = [
        {"seq": leaf.seq, "run_id": leaf.run_id, "sha256": leaf.sha256} for leaf in ledger.leaves
    ]
    records = None
    if with_records:
        records = {leaf.run_id: json.loads(ledger.records[leaf.run_id]) for leaf in ledger.leaves}
    return Checkpoint(
        origin=ledger.origin,
        experiment_id=ledger.experiment_id,
        size=ledger.size,
        root=ledger.root,
        tracking_uri=ledger.tracking_uri,
        taken_at=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        leaves=leaves,
        records=records,
    )


@dataclass(frozen=True)
class InclusionProof:
    """Evidence that one sealed run is leaf `index` of the tree of `tree_size` with `root`."""

    run_id: str
    seq: int
    sha256: str
    index: int
    tree_size: int
    root: str
    path: list[str]

    def verify(self) -> bool:
        return verify_inclusion(
            bytes.fromhex(self.sha256),
            self.index,
            self.tree_size,
            [bytes.fromhex(p) for p in self.path],
            bytes.fromhex(self.root),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "sha256": self.sha256,
            "leaf_index": self.index,
            "tree_size": self.tree_size,
            "root": self.root,
            "path": list(self.path),
        }


def inclusion_proof(ledger: Ledger, run_id: str, tree_size: int | None = None) -> InclusionProof:
    """RFC 9162 inclusion proof of a sealed run (for the audit bundle)."""
    size = ledger.size if tree_size is None else tree_size
    for index, leaf in enumerate(ledger.leaves[:size]):
        if leaf.run_id == run_id:
            path = [node.hex() for node in ledger.tree.inclusion_proof(index, size)]
            return InclusionProof(
                run_id, leaf.seq, leaf.sha256, index, size, ledger.tree.root_at(size).hex(), path
            )
    raise TrackingError(f"run {run_id} is not among the first {size} sealed runs")


def inclusion_proofs(ledger: Ledger, run_ids: Iterable[str] | None = None) -> list[InclusionProof]:
    wanted = set(run_ids) if run_ids is not None else None
    return [
        inclusion_proof(ledger, leaf.run_id)
        for leaf in ledger.leaves
        if wanted is None or leaf.run_id in wanted
    ]


def consistency_proof(ledger: Ledger, old_size: int) -> list[str]:
    return [node.hex() for node in ledger.tree.consistency_proof(old_size)]


# -- verification --------------------------------------------------------------------


@dataclass(frozen=True)
class Tamper:
    """One way the ledger no longer matches its seals or checkpoint."""

    kind: str  # changed-value, deleted-run, inserted-run, reordered-seals, truncated-log,
    #            rewritten-history, unsealed-run, duplicate-seq, missing-seq, bad-checkpoint
    message: str
    run_id: str | None = None
    seq: int | None = None
    field: str | None = None

    def finding(self) -> Finding:
        where = f"run {self.run_id}" if self.run_id else ""
        if self.seq is not None:
            where = f"{where} seq {self.seq}".strip()
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return Finding(self.kind, False, self.message, where)

    def to_json(self) -> dict[str, Any]:
        return self.finding().to_dict() | {
            "kind": self.kind,
            "message": self.message,
            "run_id": self.run_id,
            "seq": self.seq,
            "field": self.field,
        }


@dataclass
class LedgerVerification:
    origin: str
    experiment_id: str
    size: int
    root: str
    runs_checked: int
    findings: list[Tamper] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint_size: int | None = None
    consistent_with_checkpoint: bool | None = None
    signer: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def all_findings(self) -> list[Finding]:
        """Every tamper found, then the verdict on the ledger as a whole (shared renderers)."""
        verdict = Finding(
            "ledger",
            self.ok,
            f"{self.runs_checked} runs, {self.size} seals, root {self.root}",
            self.origin,
        )
        return [t.finding() for t in self.findings] + [verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "experiment_id": self.experiment_id,
            "size": self.size,
            "root": self.root,
            "runs_checked": self.runs_checked,
            "checkpoint_size": self.checkpoint_size,
            "consistent_with_checkpoint": self.consistent_with_checkpoint,
            "signer": self.signer,
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
        }


def verify_ledger(ledger: Ledger, checkpoint: Checkpoint | None = None) -> LedgerVerification:
    """Recompute every record, check seal contiguity and, given a checkpoint, consistency."""
    result = LedgerVerification(
        ledger.origin, ledger.experiment_id, ledger.size, ledger.root, len(ledger.runs)
    )
    reference = _reference(checkpoint, result) if checkpoint is not None else None
    _check_runs(ledger, reference, result)
    _check_sequence(ledger, reference, result)
    if checkpoint is not None:
        _check_checkpoint(ledger, checkpoint, reference, result)
    return result


@dataclass
class _Reference:
    """What an older checkpoint says, once its own evidence has been checked."""

    leaves: list[Leaf]
    records: dict[str, Any]


def _reference(checkpoint: Checkpoint, result: LedgerVerification) -> _Reference:
    if checkpoint.signature is not None:
        from audit.tracking.checkpoint import check_signature

        result.signer = check_signature(checkpoint)  # a bad signature is an error, not a finding
    leaves: list[Leaf] = []
    if checkpoint.leaves is not None:
        candidate = [
            Leaf(int(x["seq"]), str(x["run_id"]), str(x["sha256"])) for x in checkpoint.leaves
        ]
        tree = MerkleTree.build([bytes.fromhex(leaf.sha256) for leaf in candidate])
        if len(candidate) == checkpoint.size and tree.root.hex() == checkpoint.root:
            leaves = candidate
        else:
            result.notes.append("the checkpoint's leaf list does not match its root; ignored")
    records: dict[str, Any] = {}
    by_run = {leaf.run_id: leaf for leaf in leaves}
    for run_id, document in (checkpoint.records or {}).items():
        leaf = by_run.get(run_id)
        digest = hashlib.sha256(_jcs(document)).hexdigest()
        if leaf is not None and leaf.sha256 == digest:
            records[run_id] = document
    return _Reference(leaves, records)


def _jcs(value: object) -> bytes:
    import rfc8785

    return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]


def _check_runs(ledger: Ledger, reference: _Reference | None, result: LedgerVerification) -> None:
    sealed = {leaf.run_id: leaf for leaf in ledger.leaves}
    for run in ledger.runs:
        run_id = run.info.run_id
        tags = run.data.tags
        leaf = sealed.get(run_id)
        if run.info.lifecycle_stage != "active":
            result.findings.append(
                Tamper(
                    "deleted-run",
                    f"run {run_id} is marked deleted, which the store never allows",
                    run_id,
                    leaf.seq if leaf else None,
                    "lifecycle_stage",
                )
            )
        if leaf is None:
            if run.info.status in run_record.TERMINAL_STATUSES:
                missing = [
                    t
                    for t in (run_record.SEAL_SEQ_TAG, run_record.SEAL_SHA256_TAG)
                    if t not in tags
                ]
                bad = [] if missing else [run_record.SEAL_SEQ_TAG]
                result.findings.append(
                    Tamper(
                        "unsealed-run",
                        f"run {run_id} is {run.info.status} but has no valid seal "
                        f"({', '.join(missing or bad)} {'missing' if missing else 'malformed'}): "
                        "its seal was dropped or the run was inserted behind the store",
                        run_id,
                        None,
                        "tags." + (missing or bad)[0],
                    )
                )
            continue
        digest = hashlib.sha256(ledger.records[run_id]).hexdigest()
        if digest != leaf.sha256:
            name, detail = _changed_field(ledger, run, reference)
            result.findings.append(
                Tamper(
                    "changed-value",
                    f"run {run_id} (seal {leaf.seq}): {detail}; the record no longer matches "
                    f"its seal (sealed {leaf.sha256[:12]}, now {digest[:12]})",
                    run_id,
                    leaf.seq,
                    name,
                )
            )


def _changed_field(
    ledger: Ledger, run: Run | RestRun, reference: _Reference | None
) -> tuple[str | None, str]:
    """Name what changed: against the checkpoint's record when it has one, else from the
    run's own inconsistencies (MLflow keeps each metric's latest value in a second table,
    which a hand edit of the history usually forgets)."""
    run_id = run.info.run_id
    current = json.loads(ledger.records[run_id])
    if reference is not None and run_id in reference.records:
        paths = _diff(reference.records[run_id], current, "")
        if paths:
            path, old, new = paths[0]
            more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
            return path, f"{path} changed from {old!r} to {new!r}{more}"
    history = ledger.histories.get(run_id, {})
    for key, latest in sorted(run.data.metrics.items()):
        points = history.get(key, [])
        if not points:
            return f"metrics.{key}", f"metrics.{key} lost its history"
        last = max(points, key=lambda p: (p[0], p[1], p[2]))
        if last[2] != latest and not (latest != latest and last[2] != last[2]):
            return f"metrics.{key}", (
                f"metrics.{key} history ends at {last[2]!r} "
                f"but the run's latest value is {latest!r}"
            )
    return None, "a value changed (pass a checkpoint taken with --with-records to name it)"


def _diff(old: Any, new: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new)):
            inner = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append((inner, None, new[key]))
            elif key not in new:
                out.append((inner, old[key], None))
            else:
                out.extend(_diff(old[key], new[key], inner))
        return out
    return [] if old == new else [(path, old, new)]


def _check_sequence(
    ledger: Ledger, reference: _Reference | None, result: LedgerVerification
) -> None:
    old_by_seq = {leaf.seq: leaf for leaf in (reference.leaves if reference else [])}
    seen: dict[int, Leaf] = {}
    for leaf in ledger.leaves:
        if leaf.seq in seen:
            result.findings.append(
                Tamper(
                    "duplicate-seq",
                    f"seal {leaf.seq} is claimed by runs {seen[leaf.seq].run_id} "
                    f"and {leaf.run_id}: a run was inserted",
                    leaf.run_id,
                    leaf.seq,
                    "tags." + run_record.SEAL_SEQ_TAG,
                )
            )
        seen.setdefault(leaf.seq, leaf)
    top = max(seen) if seen else -1
    for seq in range(top + 1):
        if seq not in seen:
            old = old_by_seq.get(seq)
            who = f"run {old.run_id}" if old else "its run"
            result.findings.append(
                Tamper(
                    "missing-seq",
                    f"seal {seq} is missing ({who} was deleted or lost its seal)",
                    old.run_id if old else None,
                    seq,
                    "tags." + run_record.SEAL_SEQ_TAG,
                )
            )


def _check_checkpoint(
    ledger: Ledger, checkpoint: Checkpoint, reference: _Reference | None, result: LedgerVerification
) -> None:
    result.checkpoint_size = checkpoint.size
    if checkpoint.origin != ledger.origin:
        result.notes.append(f"checkpoint origin {checkpoint.origin} differs from {ledger.origin}")
    consistent = checkpoint.size <= ledger.size and verify_consistency(
        checkpoint.size,
        ledger.size,
        bytes.fromhex(checkpoint.root),
        ledger.tree.root,
        ledger.tree.consistency_proof(checkpoint.size),
    )
    result.consistent_with_checkpoint = consistent
    if consistent:
        return
    named = _name_rewrites(ledger, reference.leaves) if reference and reference.leaves else []
    if named:
        result.findings.extend(named)
    elif checkpoint.size > ledger.size:
        result.findings.append(
            Tamper(
                "truncated-log",
                f"the log has {ledger.size} seals but the checkpoint had {checkpoint.size}",
                seq=ledger.size,
            )
        )
    else:
        result.findings.append(
            Tamper(
                "rewritten-history",
                f"the first {checkpoint.size} seals no longer hash to the checkpoint's root: "
                "history was rewritten (the checkpoint has no leaf list to name the runs)",
            )
        )


def _name_rewrites(ledger: Ledger, old_leaves: list[Leaf]) -> list[Tamper]:
    """Compare the checkpoint's leaves with today's, seal by seal, and say what moved."""
    now = ledger.leaves
    now_by_run = {leaf.run_id: leaf for leaf in now}
    now_by_seq = {leaf.seq: leaf for leaf in now}
    old_runs = {leaf.run_id for leaf in old_leaves}
    gone = [old for old in old_leaves if old.run_id not in now_by_run]
    intact_prefix = all(now_by_seq.get(old.seq) == old for old in old_leaves if old.seq < len(now))
    if gone and intact_prefix and all(old.seq >= len(now) for old in gone):
        names = ", ".join(f"seal {leaf.seq} (run {leaf.run_id})" for leaf in gone[:5])
        return [
            Tamper(
                "truncated-log",
                f"the log has {len(now)} seals but the checkpoint had {len(old_leaves)}; "
                f"cut off: {names}",
                gone[0].run_id,
                gone[0].seq,
            )
        ]
    findings: list[Tamper] = []
    for old in old_leaves:
        new = now_by_seq.get(old.seq)
        if new == old:
            continue
        current = now_by_run.get(old.run_id)
        if current is None:
            findings.append(
                Tamper(
                    "deleted-run",
                    f"run {old.run_id} (seal {old.seq}) is gone from the log",
                    old.run_id,
                    old.seq,
                )
            )
        elif current.seq != old.seq:
            findings.append(
                Tamper(
                    "reordered-seals",
                    f"run {old.run_id} was seal {old.seq} and is now seal {current.seq}",
                    old.run_id,
                    old.seq,
                    "tags." + run_record.SEAL_SEQ_TAG,
                )
            )
        elif current.sha256 != old.sha256:
            findings.append(
                Tamper(
                    "rewritten-history",
                    f"run {old.run_id} (seal {old.seq}) was re-sealed with a different digest: "
                    "its record and seal were both rewritten",
                    old.run_id,
                    old.seq,
                    "tags." + run_record.SEAL_SHA256_TAG,
                )
            )
        if new is not None and new.run_id not in old_runs:
            findings.append(
                Tamper(
                    "inserted-run",
                    f"run {new.run_id} now sits at seal {new.seq}, inside the checkpointed history",
                    new.run_id,
                    new.seq,
                )
            )
    return findings
