"""The paired differences of a comparison over the seeds both of its arms completed.

A comparison (audit/designs.py decides which) pairs a candidate arm with its comparator on
the same seeds. A planned (arm, seed) without a usable value is attrition: listed, never
silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audit.designs import Comparison
from audit.errors import InputError, Location

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Attrition:
    arm: str
    seed: int
    reason: str
    status: str
    metric: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "arm": self.arm,
            "seed": self.seed,
            "reason": self.reason,
            "status": self.status,
        }
        if self.metric is not None:
            data["metric"] = self.metric
        return data


@dataclass(frozen=True)
class TrialTable:
    """Every trial by (arm, seed): its status, its reason and its metrics."""

    planned_seeds: tuple[int, ...]
    status: dict[tuple[str, int], str]
    reason: dict[tuple[str, int], str | None]
    metrics: dict[tuple[str, int], dict[str, float]]

    def value(self, arm: str, seed: int, metric: str) -> float | None:
        if self.status.get((arm, seed)) != "succeeded":
            return None
        value = self.metrics.get((arm, seed), {}).get(metric)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def why_missing(self, arm: str, seed: int, metric: str) -> Attrition:
        key = (arm, seed)
        status = self.status.get(key)
        if status is None:
            return Attrition(arm, seed, "no trial record in results.json", "missing")
        if status != "succeeded":
            detail = self.reason.get(key)
            text = f"trial {status}" + (f": {detail}" if detail else "")
            return Attrition(arm, seed, text, status)
        raw = self.metrics.get(key, {}).get(metric)
        text = f"metric {metric!r} " + ("missing" if raw is None else f"not finite ({raw})")
        return Attrition(arm, seed, text, "succeeded", metric)


def trial_table(results: Mapping[str, Any], source: str) -> TrialTable:
    status: dict[tuple[str, int], str] = {}
    reason: dict[tuple[str, int], str | None] = {}
    metrics: dict[tuple[str, int], dict[str, float]] = {}
    for index, trial in enumerate(results["trials"]):
        key = (str(trial["arm"]), int(trial["seed"]))
        if key in status:
            raise InputError(
                f"duplicate trial for arm {key[0]!r} seed {key[1]}",
                location=Location(source, f"/trials/{index}"),
            )
        status[key] = str(trial["status"])
        reason[key] = trial.get("reason")
        metrics[key] = {str(k): float(v) for k, v in (trial.get("metrics") or {}).items()}
    seeds = tuple(int(s) for s in results["plan"]["seeds"])
    return TrialTable(seeds, status, reason, metrics)


@dataclass
class Pairing:
    """Paired values of one metric for candidate and comparator on their shared seeds."""

    comparison: Comparison
    metric: str
    seeds: list[int] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)
    comparator: list[float] = field(default_factory=list)
    attrition: list[Attrition] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.seeds)

    def diffs(self) -> Floats:
        return np.asarray(self.candidate, dtype=np.float64) - np.asarray(
            self.comparator, dtype=np.float64
        )


def pair(table: TrialTable, comparison: Comparison, metric: str) -> Pairing:
    pairing = Pairing(comparison, metric)
    for seed in table.planned_seeds:
        cand = table.value(comparison.candidate_arm, seed, metric)
        comp = table.value(comparison.comparator_arm, seed, metric)
        if cand is not None and comp is not None:
            pairing.seeds.append(seed)
            pairing.candidate.append(cand)
            pairing.comparator.append(comp)
            continue
        for arm, value in ((comparison.candidate_arm, cand), (comparison.comparator_arm, comp)):
            if value is None:
                pairing.attrition.append(table.why_missing(arm, seed, metric))
    return pairing


def study_attrition(
    table: TrialTable, arms: Iterable[str], metrics: Iterable[str]
) -> list[Attrition]:
    """Every planned (arm, seed) that lacks a usable value for some metric, once each."""
    found: list[Attrition] = []
    metric_names = list(metrics)
    for arm in arms:
        for seed in table.planned_seeds:
            missing = [m for m in metric_names if table.value(arm, seed, m) is None]
            if not missing:
                continue
            if table.status.get((arm, seed)) == "succeeded":
                for metric in missing:
                    found.append(table.why_missing(arm, seed, metric))
            else:
                found.append(table.why_missing(arm, seed, missing[0]))
    return found
