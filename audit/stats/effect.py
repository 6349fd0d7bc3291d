"""Effect sizes of paired differences: Cohen's d_z and the probability of superiority."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from audit.stats.ci import wilson_interval

Floats = NDArray[np.float64]


def cohen_dz(diffs: Floats) -> float | None:
    """Mean difference over the SD of the differences; None when n < 2 or the SD is 0."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return None
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return None
    return float(d.mean()) / sd


@dataclass(frozen=True)
class Superiority:
    """Share of paired seeds on which the candidate beats the comparator (ties count 1/2)."""

    value: float
    low: float
    high: float
    n: int
    wins: int
    ties: int
    level: float
    method: str = "paired win share (ties 1/2), Wilson score interval"


def prob_superiority(diffs: Floats, goal: str, confidence: float) -> Superiority | None:
    """P(candidate better than comparator on a seed), in the metric's good direction."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return None
    good = d if goal == "maximize" else -d
    wins = int(np.count_nonzero(good > 0))
    ties = int(np.count_nonzero(good == 0))
    share = (wins + 0.5 * ties) / d.size
    low, high = wilson_interval(wins + 0.5 * ties, d.size, confidence)
    return Superiority(share, low, high, int(d.size), wins, ties, confidence)
