"""Per-arm mean ± SD of a metric over the succeeded trials in results.json.

What a team reads first when a delta surprises it: where each arm actually landed.
Display only; the statistics and the gate use the paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from audit.report.numbers import as_number


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    n: int
    mean: float | None
    sd: float | None  # sample SD (n - 1); None below two values
    not_succeeded: int


def arm_summaries(trials: Iterable[Mapping[str, Any]], metric: str) -> list[ArmSummary]:
    """One summary per arm, in the order the arms first appear in the trials."""
    values: dict[str, list[float]] = {}
    lost: dict[str, int] = {}
    for trial in trials:
        arm = str(trial.get("arm"))
        values.setdefault(arm, [])
        lost.setdefault(arm, 0)
        metrics = trial.get("metrics")
        value = as_number(metrics.get(metric)) if isinstance(metrics, Mapping) else None
        if trial.get("status") == "succeeded" and value is not None:
            values[arm].append(value)
        else:
            lost[arm] += 1
    return [_summary(arm, found, lost[arm]) for arm, found in values.items()]


def _summary(arm: str, found: list[float], lost: int) -> ArmSummary:
    if not found:
        return ArmSummary(arm, 0, None, None, lost)
    mean = math.fsum(found) / len(found)
    sd = None
    if len(found) > 1:
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in found) / (len(found) - 1))
    return ArmSummary(arm, len(found), mean, sd, lost)
