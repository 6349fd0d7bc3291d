"""The determinism re-run's comparison: which metrics it checks and within what tolerance.

By default it compares the metrics the EDD declares (primary and secondaries), not
every key a trial writes: a script may log timings or counters that are not evidence
and can never reproduce exactly. The EDD narrows this further with `exclude` and gives
a metric its own tolerance under `metric_tolerance`. This module only compares and
writes the check's result; the runner decides when to re-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from audit.protocol.trial import TrialOutcome


@dataclass(frozen=True)
class Tolerance:
    """|rerun - original| <= abs + rel * |original|."""

    abs: float = 0.0
    rel: float = 0.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Tolerance:
        data = data or {}
        return cls(float(data.get("abs", 0.0)), float(data.get("rel", 0.0)))

    def allows(self, original: float, diff: float) -> bool:
        return diff <= self.abs + self.rel * abs(original)

    def to_dict(self) -> dict[str, float]:
        return {"abs": self.abs, "rel": self.rel}

    def __str__(self) -> str:
        return f"abs {self.abs:g}, rel {self.rel:g}"


@dataclass(frozen=True)
class ReproducibilityRule:
    """What the EDD's `reproducibility` block asks of the re-run."""

    compared: tuple[str, ...]
    tolerance: Tolerance = Tolerance()
    per_metric: Mapping[str, Tolerance] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ReproducibilityRule:
        block = document.get("reproducibility") or {}
        metrics = document["metrics"]
        declared = [metrics["primary"]["name"]]
        declared += [m["name"] for m in metrics.get("secondary", [])]
        excluded = tuple(str(name) for name in block.get("exclude", []))
        return cls(
            compared=tuple(name for name in declared if name not in excluded),
            tolerance=Tolerance.from_mapping(block.get("tolerance")),
            per_metric={
                str(name): Tolerance.from_mapping(value)
                for name, value in block.get("metric_tolerance", {}).items()
            },
            excluded=excluded,
        )

    def tolerance_for(self, name: str) -> Tolerance:
        return self.per_metric.get(name, self.tolerance)


def _result(rule: ReproducibilityRule, arm: str, seed: int) -> dict[str, Any]:
    return {
        "arm": arm,
        "seed": seed,
        "passed": False,
        "tolerance": rule.tolerance.to_dict(),
        "metrics": {},
    }


def not_rerun(rule: ReproducibilityRule, arm: str, seed: int, reason: str) -> dict[str, Any]:
    """results.json's `reproducibility` when the re-run could not happen: failed, and why."""
    return {**_result(rule, arm, seed), "reason": reason, "attempts": 0}


def rerun_result(
    rule: ReproducibilityRule,
    arm: str,
    seed: int,
    original: Mapping[str, float],
    rerun: TrialOutcome,
) -> dict[str, Any]:
    """results.json's `reproducibility` for a re-run: the comparison, metric by metric."""
    compared = compare_metrics(original, rerun, rule)
    return {**_result(rule, arm, seed), **compared, "attempts": rerun.attempts}


def compare_metrics(
    original: Mapping[str, float], rerun: TrialOutcome, rule: ReproducibilityRule
) -> dict[str, Any]:
    """Each compared metric must come back within its tolerance; the rest are not looked at."""
    metrics: dict[str, dict[str, Any]] = {}
    failures = []
    for name in rule.compared:
        value = original.get(name)
        again = rerun.metrics.get(name) if rerun.status == "succeeded" else None
        diff = abs(again - value) if again is not None and value is not None else None
        tolerance = rule.tolerance_for(name)
        passed = diff is not None and value is not None and tolerance.allows(value, diff)
        metrics[name] = {
            "original": value,
            "rerun": again,
            "abs_diff": diff,
            "tolerance": tolerance.to_dict(),
            "passed": passed,
        }
        if not passed:
            failures.append(name)
    return {
        "passed": not failures and rerun.status == "succeeded",
        "metrics": metrics,
        "excluded": list(rule.excluded),
        "reason": _reason(rerun, metrics, failures, rule),
    }


def _reason(
    rerun: TrialOutcome,
    metrics: Mapping[str, Mapping[str, Any]],
    failures: list[str],
    rule: ReproducibilityRule,
) -> str:
    if rerun.status != "succeeded":
        return f"the re-run {rerun.status}: {rerun.reason}"
    if failures:
        return "; ".join(
            f"metric '{name}' differs: {metrics[name]['original']!r} vs "
            f"{metrics[name]['rerun']!r} (tolerance {rule.tolerance_for(name)})"
            for name in failures
        )
    names = ", ".join(rule.compared)
    skipped = f"; not compared: {', '.join(rule.excluded)}" if rule.excluded else ""
    return f"{names} reproduced within tolerance{skipped}"
