"""results.json: build it, validate it against schemas/results.schema.json, merge CI shards.

A shard's results hold only its trials; `collect_results` checks that every
planned (arm, seed) appears exactly once and that every shard ran the same EDD,
plan, provenance and approvals before writing one merged document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audit.errors import CheckFailed, InputError

SCHEMA_ID = "mlaudit/results/v1"
RESULTS_NAME = "results.json"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def results_header(
    *,
    edd: Mapping[str, Any],
    plan: Mapping[str, Any],
    provenance: Mapping[str, Any],
    approvals: Sequence[Mapping[str, Any]],
    trust: Mapping[str, Any] | None,
    shard: str | None,
) -> dict[str, Any]:
    """Everything in results.json but trials, budget and outcome: known before any trial runs."""
    return {
        "schema": SCHEMA_ID,
        "edd": dict(edd),
        "plan": {**plan, "shard": shard},
        "provenance": dict(provenance),
        "approvals": [dict(a) for a in approvals],
        "trust": dict(trust) if trust is not None else None,
    }


def approval_rows(approvals: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keys = ("principal", "role", "key_fingerprint", "verdict", "reason")
    return [{key: approval.get(key) for key in keys} for approval in approvals]


def validate_results(document: Mapping[str, Any], file: str) -> None:
    from audit._resources import check_schema

    check_schema(document, "results", file)


def preload_schema_check() -> None:
    """Import the schema checker in the background while trials run: write_json needs it
    after the last trial, when nothing else would overlap the import. (jsonschema itself
    is imported only to word the problems of a document the checker refuses.)"""
    from audit._preload import preload

    preload("audit.edd.schema_check")


def write_json(document: Mapping[str, Any], path: Path) -> None:
    """Write results.json through the one atomic writer, checked against its schema first."""
    from audit.documents import write_document

    write_document(path, document, schema="results")


def read_results(path: Path) -> dict[str, Any]:
    """A results document (or an out folder holding one) through the one strict reader."""
    from audit.documents import read_results as read_document

    return read_document(path).document


# -- collect ----------------------------------------------------------------------

# Provenance that must agree between shards; the machine's platform string may not.
_SAME_PROVENANCE = ("fingerprint", "git", "data", "dvc_status_clean")
_SAME_ENVIRONMENT = ("python", "distributions_sha256", "lock_sha256", "image_digest")


def _same(label: str, first: Any, other: Any, file: str) -> None:
    if first != other:
        raise CheckFailed(f"{file}: {label} differs from the first shard's", location=None)


def _check_consistent(first: Mapping[str, Any], other: Mapping[str, Any], file: str) -> None:
    _same("EDD digest", first["edd"]["digest"], other["edd"]["digest"], file)
    plan_a = {k: v for k, v in first["plan"].items() if k != "shard"}
    plan_b = {k: v for k, v in other["plan"].items() if k != "shard"}
    _same("plan", plan_a, plan_b, file)
    for key in _SAME_PROVENANCE:
        _same(f"provenance.{key}", first["provenance"].get(key), other["provenance"].get(key), file)
    env_a = first["provenance"].get("environment", {})
    env_b = other["provenance"].get("environment", {})
    for key in _SAME_ENVIRONMENT:
        _same(f"provenance.environment.{key}", env_a.get(key), env_b.get(key), file)
    _same("approvals", first.get("approvals"), other.get("approvals"), file)
    _same("trust", first.get("trust"), other.get("trust"), file)


def _planned_ids(plan: Mapping[str, Any]) -> list[str]:
    return [f"{arm['name']}/{seed}" for seed in plan["seeds"] for arm in plan["arms"]]


def collect_results(paths: Sequence[Path]) -> dict[str, Any]:
    """Merge shard results (or out dirs holding them) into one results document."""
    if not paths:
        raise InputError("no results given")
    documents = [(str(p), read_results(p)) for p in paths]
    first_file, first = documents[0]
    for file, other in documents[1:]:
        _check_consistent(first, other, file)
    trials: dict[str, dict[str, Any]] = {}
    for file, document in documents:
        for trial in document["trials"]:
            if trial["trial_id"] in trials:
                raise CheckFailed(f"{file}: trial {trial['trial_id']} appears in two shards")
            trials[trial["trial_id"]] = trial
    planned = _planned_ids(first["plan"])
    missing = [t for t in planned if t not in trials]
    if missing:
        raise CheckFailed(
            f"trial {missing[0]} is in no shard"
            + (f" (and {len(missing) - 1} more are missing)" if len(missing) > 1 else "")
        )
    unknown = sorted(set(trials) - set(planned))
    if unknown:
        raise CheckFailed(f"trial {unknown[0]} is not in the plan")
    merged = {k: v for k, v in first.items() if k not in ("trials", "reproducibility")}
    merged["plan"] = {**first["plan"], "shard": None}
    merged["trials"] = [trials[t] for t in planned]
    merged["budget"] = _merge_budget([d["budget"] for _, d in documents])
    checks = [d["reproducibility"] for _, d in documents if d.get("reproducibility")]
    merged["reproducibility"] = checks[0] if checks else None
    merged["tracking"] = next((d["tracking"] for _, d in documents if d.get("tracking")), None)
    merged["created_at"] = utc_now()
    merged["shards"] = [d["plan"].get("shard") for _, d in documents]
    validate_results(merged, first_file)
    return merged


def _merge_budget(budgets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    first = budgets[0]
    return {
        **first,
        "trials_run": sum(int(b["trials_run"]) for b in budgets),
        # Shards run side by side: the study took as long as its slowest shard.
        "wall_seconds": max(float(b["wall_seconds"]) for b in budgets),
        "exhausted": any(bool(b["exhausted"]) for b in budgets),
    }
