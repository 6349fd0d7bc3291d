"""How many seeds a claim needs: the claim test's floor and the planning-effect hint.

The claim test is a one-sided paired t-test against the claim boundary, so its floor is
two pairs (one degree of freedom) and its power at a true effect e is the noncentral-t
probability of exceeding the critical value, with noncentrality (e - boundary) / sd * sqrt(n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_SEEDS_HINT = 1000  # the EDD schema allows at most 1000 seeds
MIN_PAIRS = 2  # a t-test needs one degree of freedom
PLANNING_POWER = 0.8


@dataclass(frozen=True)
class SeedFloor:
    """The fewest pairs the claim test can judge at all (the t-test needs n >= 2)."""

    n: int
    threshold: float
    reachable: bool
    seeds_needed: int
    alternative: str = "greater (good direction)"
    method: str = "one-sided paired t-test: defined for n >= 2 pairs (df >= 1)"


def seed_floor(n: int, alpha: float) -> SeedFloor:
    """The floor follows the test actually used: each claim at alpha, a t-test, n >= 2."""
    return SeedFloor(n=n, threshold=alpha, reachable=n >= MIN_PAIRS, seeds_needed=MIN_PAIRS)


def t_power(n: int, shift: float, sd: float, alpha: float, two_sided: bool = False) -> float:
    """Power of a paired t-test with n pairs when the true mean is `shift` above the null."""
    from scipy import stats as sps

    if n < MIN_PAIRS:
        return 0.0
    df = n - 1
    ncp = shift / sd * math.sqrt(n)
    if two_sided:
        crit = float(sps.t.ppf(1 - alpha / 2, df))
        return float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp))
    crit = float(sps.t.ppf(1 - alpha, df))
    return float(sps.nct.sf(crit, df, ncp))


@dataclass(frozen=True)
class SampleSizeHint:
    """Seeds for a paired t-test to detect `effect` with `power` at SD `sd`."""

    seeds_needed: int | None
    effect: float
    sd: float
    alpha: float
    power: float
    two_sided: bool
    method: str = "paired t-test power (noncentral t)"
    note: str | None = None


def sample_size_hint(
    sd: float,
    effect: float,
    alpha: float,
    *,
    power: float = PLANNING_POWER,
    two_sided: bool = True,
    floor: int = MIN_PAIRS,
) -> SampleSizeHint:
    """Smallest n (>= floor) whose paired t-test reaches `power` when the true mean is
    `effect` above the null value."""
    if not np.isfinite(sd) or effect <= 0:
        return SampleSizeHint(
            None, effect, sd, alpha, power, two_sided, note="no positive effect to plan for"
        )
    start = max(floor, MIN_PAIRS)
    if sd == 0:
        return SampleSizeHint(
            start, effect, sd, alpha, power, two_sided, note="differences have no spread"
        )
    low, high = start, start
    while t_power(high, effect, sd, alpha, two_sided) < power:
        if high >= MAX_SEEDS_HINT:
            return SampleSizeHint(
                None, effect, sd, alpha, power, two_sided, note=f"more than {MAX_SEEDS_HINT} seeds"
            )
        low, high = high, min(MAX_SEEDS_HINT, high * 2)
    # Power grows with n, so a binary search finds the first n that reaches it.
    while low < high:
        mid = (low + high) // 2
        if t_power(mid, effect, sd, alpha, two_sided) >= power:
            high = mid
        else:
            low = mid + 1
    return SampleSizeHint(high, effect, sd, alpha, power, two_sided)


@dataclass(frozen=True)
class PlanningHint:
    """Seeds the claim test needs for 80% power at the planning effect, and power at n now."""

    basis: str
    planning_effect: float
    boundary: float
    sd: float
    sd_source: str
    alpha: float
    power: float
    seeds_needed: int | None
    power_at_n: float | None
    n: int
    method: str = (
        "power of the one-sided paired t-test against the claim boundary at alpha "
        "(noncentral t); true effect = planning effect"
    )
    note: str | None = None


def planning_hint(
    *,
    basis: str,
    planning_effect: float,
    boundary: float,
    sd: float,
    sd_source: str,
    alpha: float,
    n: int,
    power: float = PLANNING_POWER,
) -> PlanningHint:
    """The claim test's seed requirement at `planning_effect` (good direction)."""
    shift = planning_effect - boundary
    hint = sample_size_hint(sd, shift, alpha, power=power, two_sided=False)
    now = t_power(n, shift, sd, alpha) if shift > 0 and sd > 0 and math.isfinite(sd) else None
    note = hint.note
    if shift <= 0:
        note = "the planning effect does not exceed the claim boundary: no power to plan for"
    return PlanningHint(
        basis,
        planning_effect,
        boundary,
        sd,
        sd_source,
        alpha,
        power,
        hint.seeds_needed,
        now,
        n,
        note=note,
    )
