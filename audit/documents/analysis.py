"""analysis.json as a typed value: the comparisons, the statistical decision, its method."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.documents.json_io import parse_object, read_bytes

SCHEMA = "analysis"


@dataclass(frozen=True)
class Comparison:
    target: str
    metric: str
    verdict: str
    delta: float | None
    pointer: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, self.metric)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], index: int) -> Comparison:
        delta = (data.get("delta") or {}).get("value")
        return cls(
            target=str(data["target"]),
            metric=str(data["metric"]),
            verdict=str(data["verdict"]),
            delta=float(delta) if isinstance(delta, int | float) else None,
            pointer=f"/comparisons/{index}",
        )


@dataclass(frozen=True)
class Analysis:
    source: str
    raw: bytes = field(repr=False)
    document: dict[str, Any] = field(repr=False)
    comparisons: tuple[Comparison, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def passed(self) -> bool:
        return bool(self.document["decision"].get("passed"))

    @property
    def results_sha256(self) -> str:
        return str(self.document["results_sha256"])

    def method(self, key: str, default: int) -> int:
        """The seed or resample count the analysis used (a recomputation must use the same)."""
        value = (self.document.get("method") or {}).get(key, default)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else default


def parse_analysis(raw: bytes, source: str) -> Analysis:
    document = parse_object(raw, source, SCHEMA)
    comparisons = tuple(Comparison.from_json(c, i) for i, c in enumerate(document["comparisons"]))
    return Analysis(source=source, raw=raw, document=document, comparisons=comparisons)


def read_analysis(path: Path) -> Analysis:
    return parse_analysis(read_bytes(path), str(path))
