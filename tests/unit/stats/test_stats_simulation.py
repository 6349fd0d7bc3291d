"""Small simulations of the claim rule through judge(): error rates at the claim boundary.

Sizes are chosen for CI (a few seconds): R replicates give a binomial standard error of
sqrt(p(1-p)/R); every bound below is the nominal rate plus 3 such standard errors. The
full grid (noise shapes, correlations, n) is tests/unit/stats/test_operating_characteristics.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.stats.ci import t_interval
from audit.stats.decision import Claim, ComparisonEvidence, judge
from audit.stats.ttest import boundary_tests

ALPHA = 0.05
R = 2000


def _three_se(p: float, r: int = R) -> float:
    return 3 * math.sqrt(p * (1 - p) / r)


def _approval_rate(claim: Claim, good: np.ndarray) -> float:
    tests = boundary_tests(good, claim.boundary, ALPHA)
    hits = 0
    for row in range(good.shape[0]):
        evidence = ComparisonEvidence(
            n=good.shape[1],
            goal="maximize",
            delta=float(good[row].mean()),
            p_value=float(tests.p_value[row]),
            lower_bound=float(tests.lower[row]),
            floor_reachable=True,
            seeds_needed=2,
            attrition=0,
        )
        hits += judge(claim, evidence, ALPHA).verdict == claim.claim
    return hits / good.shape[0]


IMPROVES = Claim(0, "c", "m", "improves", min_effect=0.5, margin=None)
NON_INFERIOR = Claim(1, "c", "m", "non-inferior", min_effect=0.0, margin=0.5)


@pytest.mark.parametrize("n", [8, 30])
def test_a_true_effect_of_exactly_min_effect_is_approved_at_most_at_alpha(n):
    # The rule before statistics v2 approved this ~50% of the time (point estimate vs
    # min_effect, test of effect = 0).
    good = np.random.default_rng(100 + n).normal(IMPROVES.min_effect, 1.0, (R, n))
    assert _approval_rate(IMPROVES, good) <= ALPHA + _three_se(ALPHA)


def test_half_of_min_effect_is_rarely_approved():
    good = np.random.default_rng(102).normal(IMPROVES.min_effect / 2, 1.0, (R, 10))
    assert _approval_rate(IMPROVES, good) <= ALPHA


def test_the_test_is_one_sided_at_alpha_not_alpha_over_two():
    # At the boundary the rejection rate is alpha (not alpha/2 as with a two-sided p).
    good = np.random.default_rng(103).normal(IMPROVES.min_effect, 1.0, (4 * R, 10))
    rate = _approval_rate(IMPROVES, good)
    assert abs(rate - ALPHA) <= _three_se(ALPHA, 4 * R)


def test_non_inferiority_at_the_margin_is_rarely_claimed():
    good = np.random.default_rng(104).normal(NON_INFERIOR.boundary, 1.0, (R, 10))
    assert _approval_rate(NON_INFERIOR, good) <= ALPHA + _three_se(ALPHA)
    # And with no true difference it is usually shown (d = 0.5 above the boundary).
    well = np.random.default_rng(105).normal(0.0, 1.0, (R, 30))
    assert _approval_rate(NON_INFERIOR, well) > 0.8


@pytest.mark.parametrize("n", [8, 30])
def test_t_interval_coverage_is_close_to_nominal(n):
    rng = np.random.default_rng(200 + n)
    d = rng.normal(0.3, 1.0, (R, n))
    ci = t_interval(d, 0.95)
    coverage = float(np.mean((ci.low <= 0.3) & (ci.high >= 0.3)))
    assert abs(coverage - 0.95) <= _three_se(0.95)
