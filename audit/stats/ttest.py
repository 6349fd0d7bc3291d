"""The claim test: a one-sided paired t-test against the claim's boundary, and its bound.

A claim states a boundary b in the metric's good direction (b = min_effect for
`improves`, b = -margin for `non-inferior`). The test is H0: effect <= b against
H1: effect > b at the EDD's alpha, and the matching one-sided (1 - alpha) lower
confidence bound. p < alpha exactly when the bound is above b (same t quantile), so
the two can never disagree. Works on 2-D arrays (rows = comparisons) so the simulation
in bench/ runs the same arithmetic vectorised. The t distribution comes from
scipy.special (stdtr, stdtrit): the functions scipy.stats.t.sf / .ppf call, so the values
are bit-identical, without importing scipy.stats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

Floats = NDArray[np.float64]

METHOD = "one-sided paired t-test against the claim boundary"
BOUND_METHOD = "one-sided Student-t lower confidence bound (good direction)"


@dataclass(frozen=True)
class BoundaryTests:
    """Per row: t statistic, one-sided p, lower (1 - alpha) bound; all in the good direction."""

    statistic: Floats
    p_value: Floats
    lower: Floats
    df: int


def boundary_tests(good: Floats, boundary: Floats | float, alpha: float) -> BoundaryTests:
    """One-sided paired t-tests of H0 mean <= boundary for every row of `good` (n >= 2).

    Rows with zero spread get statistic +-inf (or nan at the boundary) and a zero-width
    bound; the caller decides what a degenerate sample may conclude.
    """
    d = np.atleast_2d(np.asarray(good, dtype=np.float64))
    n = d.shape[1]
    b = np.broadcast_to(np.asarray(boundary, dtype=np.float64), (d.shape[0],))
    mean = d.mean(axis=1)
    sem = d.std(axis=1, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = (mean - b) / sem
    p = np.asarray(special.stdtr(n - 1, -statistic), dtype=np.float64)
    lower = mean - float(special.stdtrit(n - 1, 1.0 - alpha)) * sem
    return BoundaryTests(statistic, p, lower, n - 1)


def two_sided_p(diffs: Floats) -> Floats:
    """Two-sided paired t-test p of H0 mean = 0 per row (descriptive comparisons)."""
    d = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    n = d.shape[1]
    sem = d.std(axis=1, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = d.mean(axis=1) / sem
    p: Floats = np.asarray(2.0 * special.stdtr(n - 1, -np.abs(statistic)), dtype=np.float64)
    return p
