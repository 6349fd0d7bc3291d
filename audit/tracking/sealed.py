"""Sealed runs are the evidence: compare results.json with them, trial by trial, field by field.

Pure: takes results.json and the sealed records (run id -> record object, already
proven by the caller: verified against the live ledger or by inclusion proofs in a
bundle) and returns every difference. Nothing here talks to a server.

A trial is found by its idempotency key (EDD digest, plan, arm, seed), then its
status, seed, arm, fingerprint and every metric value must equal the sealed ones;
every sealed trial run of the same execution must appear in results.json.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audit.documents import Results, TrialRecord
from audit.errors import escape_pointer_token
from audit.tracking.runspec import (
    EXECUTION_KEY_TAG,
    ROLE_TAG,
    TRIAL_KEY_TAG,
    TRIAL_STATUS_TO_RUN_STATUS,
    execution_key,
    sealed_trial_runs,
)

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Difference:
    """results.json says one thing, the sealed run of `trial` another."""

    trial: str
    field: str
    pointer: str  # into results.json
    message: str

    def __str__(self) -> str:
        return f"trial {self.trial}: {self.field}: {self.message}"


@dataclass(frozen=True)
class SealedComparison:
    runs: Mapping[str, str | None]  # trial id -> sealed run id (None: no sealed run)
    differences: tuple[Difference, ...]

    @property
    def unsealed(self) -> tuple[str, ...]:
        return tuple(trial for trial, run in self.runs.items() if run is None)


def latest_values(record: Record) -> dict[str, float | None]:
    """Each metric's latest value (highest step, then timestamp), as MLflow reports it.

    A sealed NaN or infinity (encoded as a string) is None: results.json cannot hold it.
    """
    values: dict[str, float | None] = {}
    for key, history in (record.get("metrics") or {}).items():
        if not history:
            continue
        _, _, value = max(history, key=lambda point: (int(point[0]), int(point[1])))
        values[str(key)] = float(value) if isinstance(value, int | float) else None
    return values


def compare_with_sealed(results: Results, records: Mapping[str, Record]) -> SealedComparison:
    runs = sealed_trial_runs(results.document, records)
    differences: list[Difference] = []
    for trial in results.trials:
        run_id = runs.get(trial.trial_id)
        if run_id is not None:
            differences.extend(_trial_differences(trial, records[run_id]))
    differences.extend(_missing_trials(results, records, runs))
    return SealedComparison(runs, tuple(differences))


def _trial_differences(trial: TrialRecord, record: Record) -> list[Difference]:
    tags = record.get("tags") or {}
    found: list[Difference] = []

    def differ(field: str, pointer: str, given: object, sealed: object) -> None:
        found.append(
            Difference(
                trial.trial_id,
                field,
                trial.pointer + pointer,
                f"results.json has {given!r}, the sealed run {record.get('run_id')} has {sealed!r}",
            )
        )

    status = tags.get("mlaudit.trial.status")
    if status != trial.status or record.get("status") != TRIAL_STATUS_TO_RUN_STATUS[trial.status]:
        differ("status", "/status", trial.status, status or record.get("status"))
    if tags.get("mlaudit.seed") != str(trial.seed):
        differ("seed", "/seed", trial.seed, tags.get("mlaudit.seed"))
    if tags.get("mlaudit.arm") != trial.arm:
        differ("arm", "/arm", trial.arm, tags.get("mlaudit.arm"))
    if tags.get("mlaudit.trial.fingerprint") != trial.fingerprint:
        differ(
            "fingerprint", "/fingerprint", trial.fingerprint, tags.get("mlaudit.trial.fingerprint")
        )
    sealed = latest_values(record)
    for name in sorted(set(sealed) | set(trial.metrics)):
        pointer = f"/metrics/{escape_pointer_token(name)}"
        given, kept = trial.metrics.get(name), sealed.get(name)
        if given is None or kept is None or not _same(given, kept):
            differ(f"metrics.{name}", pointer, given, kept)
    return found


def _same(a: float, b: float) -> bool:
    # MLflow stores doubles: an untouched value comes back bit for bit.
    return a == b or (math.isnan(a) and math.isnan(b))


def _missing_trials(
    results: Results, records: Mapping[str, Record], runs: Mapping[str, str | None]
) -> list[Difference]:
    """Sealed trial runs of this very execution that results.json leaves out."""
    key = execution_key(results.header())
    claimed = {run for run in runs.values() if run is not None}
    missing = []
    for run_id, record in sorted(records.items()):
        tags = record.get("tags") or {}
        if tags.get(ROLE_TAG) != "trial" or tags.get(EXECUTION_KEY_TAG) != key:
            continue
        if run_id in claimed:
            continue
        name = str(tags.get("mlaudit.trial_id") or tags.get(TRIAL_KEY_TAG))
        missing.append(
            Difference(
                name, "trial", "/trials", f"sealed run {run_id} is missing from results.json"
            )
        )
    return missing


def sealed_document(results: Results, records: Mapping[str, Record]) -> dict[str, Any]:
    """results.json with every sealed trial's status and metrics taken from its sealed run.

    The gate and `bundle verify` recompute the analysis from this, so the numbers they
    judge are the sealed ones, whatever results.json says.
    """
    runs = sealed_trial_runs(results.document, records)
    document = copy.deepcopy(results.document)
    for index, trial in enumerate(results.trials):
        run_id = runs.get(trial.trial_id)
        if run_id is None:
            continue
        record = records[run_id]
        entry = document["trials"][index]
        status = (record.get("tags") or {}).get("mlaudit.trial.status")
        if isinstance(status, str):
            entry["status"] = status
        entry["metrics"] = {k: v for k, v in latest_values(record).items() if v is not None}
    return document


def prove_record(entry: Mapping[str, Any], size: int, root: bytes) -> str | None:
    """Why a sealed-record entry (record, sha256, leaf_index, inclusion_proof) does not
    prove itself against a checkpoint of `size` leaves and `root`; None when it does.
    """
    import rfc8785

    from audit.tracking.merkle import verify_inclusion
    from audit.tracking.record import record_sha256

    try:
        # JCS is idempotent, so re-serialising the parsed record gives the sealed bytes.
        digest = record_sha256(rfc8785.dumps(entry["record"]))
        proof = [bytes.fromhex(p) for p in entry["inclusion_proof"]]
        index, sealed = int(entry["leaf_index"]), str(entry["sha256"])
    except (KeyError, TypeError, ValueError) as error:
        return f"not a sealed record entry: {error}"
    if digest != sealed:
        return "recomputed record digest differs from its seal"
    if not verify_inclusion(bytes.fromhex(digest), index, size, proof, root):
        return "does not prove inclusion in the checkpoint"
    return None
