"""How many seeds a claim needs: the permutation-test floor and a t-based sample-size hint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_SEEDS_HINT = 1000  # the EDD schema allows at most 1000 seeds


@dataclass(frozen=True)
class SeedFloor:
    """With n paired seeds the smallest exact sign-flip p is 2/2^n (two-sided) or 1/2^n.

    `threshold` is the p a claim must beat after correction in the worst case
    (alpha / family size, the first Holm step); below the floor no data can get there.
    """

    n: int
    min_p: float
    threshold: float
    reachable: bool
    seeds_needed: int
    alternative: str
    method: str = "exact sign-flip floor 2^(1-n) (two-sided) or 2^-n (one-sided)"


def min_exact_p(n: int, two_sided: bool) -> float:
    if n <= 0:
        return 1.0
    return min(1.0, (2.0 if two_sided else 1.0) / 2.0**n)


def min_p(n: int, two_sided: bool, resamples: int | None = None, exact_max_n: int = 20) -> float:
    """Smallest p the sign-flip test can return: exact floor, or the Monte Carlo one."""
    floor = min_exact_p(n, two_sided)
    if n > exact_max_n and resamples is not None:
        floor = max(floor, (2.0 if two_sided else 1.0) / (resamples + 1.0))
    return floor


def seed_floor(
    n: int,
    alpha: float,
    family_size: int,
    two_sided: bool = True,
    resamples: int | None = None,
    exact_max_n: int = 20,
) -> SeedFloor:
    threshold = alpha / max(1, family_size)
    needed = 1
    while min_exact_p(needed, two_sided) >= threshold:
        needed += 1
    smallest = min_p(n, two_sided, resamples, exact_max_n)
    return SeedFloor(
        n=n,
        min_p=smallest,
        threshold=threshold,
        reachable=smallest < threshold,
        seeds_needed=needed,
        alternative="two-sided" if two_sided else "one-sided",
    )


@dataclass(frozen=True)
class SampleSizeHint:
    """Seeds for a paired t-test to detect `effect` with `power`, from the observed SD."""

    seeds_needed: int | None
    effect: float
    sd: float
    alpha: float
    power: float
    two_sided: bool
    method: str = "paired t-test power (noncentral t), SD of observed differences"
    note: str | None = None


def _t_power(n: int, effect: float, sd: float, alpha: float, two_sided: bool) -> float:
    from scipy import stats as sps

    df = n - 1
    ncp = effect / sd * math.sqrt(n)
    if two_sided:
        crit = float(sps.t.ppf(1 - alpha / 2, df))
        return float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp))
    crit = float(sps.t.ppf(1 - alpha, df))
    return float(sps.nct.sf(crit, df, ncp))


def sample_size_hint(
    sd: float,
    effect: float,
    alpha: float,
    *,
    power: float = 0.8,
    two_sided: bool = True,
    floor: int = 2,
) -> SampleSizeHint:
    """Smallest n (>= floor) whose paired t-test reaches `power` for a true `effect`."""
    if not np.isfinite(sd) or effect <= 0:
        return SampleSizeHint(
            None, effect, sd, alpha, power, two_sided, note="no positive effect to plan for"
        )
    if sd == 0:
        return SampleSizeHint(
            max(floor, 2),
            effect,
            sd,
            alpha,
            power,
            two_sided,
            note="differences have no spread; the seed floor decides",
        )
    low, high = max(floor, 2), max(floor, 2)
    while _t_power(high, effect, sd, alpha, two_sided) < power:
        if high >= MAX_SEEDS_HINT:
            return SampleSizeHint(
                None, effect, sd, alpha, power, two_sided, note=f"more than {MAX_SEEDS_HINT} seeds"
            )
        low, high = high, min(MAX_SEEDS_HINT, high * 2)
    # Power grows with n, so a binary search finds the first n that reaches it.
    while low < high:
        mid = (low + high) // 2
        if _t_power(mid, effect, sd, alpha, two_sided) >= power:
            high = mid
        else:
            low = mid + 1
    return SampleSizeHint(high, effect, sd, alpha, power, two_sided)
