"""results.json as a typed value: the executed plan's header and one record per trial.

`read_results` is the only way mlaudit reads a results document; it keeps the exact
bytes (their sha256 ties analysis.json and gate.json to them) and the parsed,
schema-checked document the statistics consume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.designs import Comparison
from audit.documents.json_io import parse_object, read_bytes

SCHEMA = "results"


@dataclass(frozen=True)
class TrialRecord:
    """One trial as results.json states it; `pointer` is its place in the file."""

    trial_id: str
    arm: str
    seed: int
    status: str
    metrics: Mapping[str, float]
    fingerprint: str | None
    mlflow_run_id: str | None
    pointer: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any], index: int) -> TrialRecord:
        return cls(
            trial_id=str(data["trial_id"]),
            arm=str(data["arm"]),
            seed=int(data["seed"]),
            status=str(data["status"]),
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            fingerprint=data.get("fingerprint"),
            mlflow_run_id=data.get("mlflow_run_id"),
            pointer=f"/trials/{index}",
        )


@dataclass(frozen=True)
class Results:
    source: str
    raw: bytes = field(repr=False)
    document: dict[str, Any] = field(repr=False)
    trials: tuple[TrialRecord, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def edd_digest(self) -> str:
        return str(self.document["edd"]["digest"])

    @property
    def edd_id(self) -> str:
        return str(self.document["edd"]["id"])

    @property
    def created_at(self) -> str | None:
        value = self.document.get("created_at")
        return value if isinstance(value, str) and value else None

    @property
    def experiment_id(self) -> str | None:
        tracking = self.document.get("tracking") or {}
        value = tracking.get("experiment_id") if isinstance(tracking, Mapping) else None
        return str(value) if value else None

    @property
    def comparisons(self) -> tuple[Comparison, ...] | None:
        """plan.comparisons as recorded; None for results written before plans recorded them."""
        recorded = self.document["plan"].get("comparisons")
        if recorded is None:
            return None
        return tuple(Comparison.from_dict(c) for c in recorded)

    def header(self) -> dict[str, Any]:
        """Everything but the trials: what identifies the execution (its idempotency keys)."""
        return {k: v for k, v in self.document.items() if k != "trials"}


def parse_results(raw: bytes, source: str) -> Results:
    document = parse_object(raw, source, SCHEMA)
    trials = tuple(TrialRecord.from_json(t, i) for i, t in enumerate(document["trials"]))
    return Results(source=source, raw=raw, document=document, trials=trials)


def read_results(path: Path) -> Results:
    """results.json (or an out folder holding one; '-' is standard input)."""
    file = path / "results.json" if path.is_dir() else path
    return parse_results(read_bytes(file), str(file))
