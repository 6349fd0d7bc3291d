"""Small simulations: the verdicts keep their error rates and the CIs their coverage.

Sizes are chosen for CI (a few seconds): R replicates give a binomial standard error of
sqrt(p(1-p)/R); every bound below is the nominal rate plus 3 such standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from audit.stats.ci import bca_interval, t_interval
from audit.stats.decision import Claim, Evidence, judge
from audit.stats.permutation import exact_sign_flip_pvalues, sign_flip_test

ALPHA = 0.05
R = 1000


def _three_se(p: float, r: int = R) -> float:
    return 3 * math.sqrt(p * (1 - p) / r)


def _improves_rate(d: np.ndarray, p_values: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    claim = Claim(0, "c", "m", "improves", min_effect=0.0, margin=None)
    hits = 0
    for row in range(d.shape[0]):
        evidence = Evidence(
            n=d.shape[1],
            goal="maximize",
            delta=float(d[row].mean()),
            ci_low=float(low[row]),
            ci_high=float(high[row]),
            level=0.95,
            p_adjusted=float(p_values[row]),
            floor_reachable=True,
            seeds_needed=6,
            attrition=0,
        )
        hits += judge(claim, evidence, ALPHA).verdict == "improves"
    return hits / d.shape[0]


def test_no_effect_rarely_improves_at_n10():
    rng = np.random.default_rng(101)
    d = rng.normal(0.0, 1.0, (R, 10))
    p = exact_sign_flip_pvalues(d)
    ci = t_interval(d, 0.95)
    # The two-sided test alone rejects at about alpha; "improves" needs the good side too.
    assert np.mean(p < ALPHA) <= ALPHA + _three_se(ALPHA)
    assert _improves_rate(d, p, ci.low, ci.high) <= ALPHA + _three_se(ALPHA)


def test_no_effect_rarely_improves_at_n30():
    rng = np.random.default_rng(102)
    d = rng.standard_t(5, (R, 30))  # heavier tails than normal, still symmetric
    p = np.array(
        [
            sign_flip_test(row, resamples=499, rng=np.random.default_rng([102, i])).p_value
            for i, row in enumerate(d)
        ]
    )
    ci = bca_interval(d, 0.95, 999, np.random.default_rng(7))
    assert np.mean(p < ALPHA) <= ALPHA + _three_se(ALPHA)
    assert _improves_rate(d, p, ci.low, ci.high) <= ALPHA + _three_se(ALPHA)


def test_non_inferiority_at_the_margin_is_rarely_claimed():
    # True delta exactly at -margin: the null of the non-inferiority test holds.
    rng = np.random.default_rng(103)
    margin = 0.5
    d = rng.normal(-margin, 1.0, (R, 10))
    claim = Claim(0, "c", "m", "non-inferior", min_effect=0.0, margin=margin)
    ci = t_interval(d, 0.95)
    p = exact_sign_flip_pvalues(d + margin)  # two-sided; the one-sided p is about half
    hits = 0
    for row in range(R):
        one_sided = sign_flip_test(d[row], alternative="greater", null_shift=-margin).p_value
        evidence = Evidence(
            n=10,
            goal="maximize",
            delta=float(d[row].mean()),
            ci_low=float(ci.low[row]),
            ci_high=float(ci.high[row]),
            level=0.95,
            p_adjusted=one_sided,
            floor_reachable=True,
            seeds_needed=5,
            attrition=0,
        )
        hits += judge(claim, evidence, ALPHA).verdict == "non-inferior"
    assert hits / R <= ALPHA + _three_se(ALPHA)
    assert np.mean(p < 2 * ALPHA) <= 2 * ALPHA + _three_se(2 * ALPHA)


@pytest.mark.parametrize(("n", "method"), [(10, "t"), (30, "bca")])
def test_ci_coverage_is_close_to_nominal(n, method):
    rng = np.random.default_rng(200 + n)
    true_mean = 0.3
    d = rng.normal(true_mean, 1.0, (R, n))
    if method == "t":
        ci = t_interval(d, 0.95)
    else:
        ci = bca_interval(d, 0.95, 999, np.random.default_rng(n))
    coverage = float(np.mean((ci.low <= true_mean) & (true_mean <= ci.high)))
    # BCa is known to under-cover slightly at small n (Efron & Tibshirani 1993, ch. 14).
    lower = 0.95 - _three_se(0.95) - (0.01 if method == "bca" else 0.0)
    assert lower <= coverage <= 0.95 + _three_se(0.95)


def test_bca_coverage_on_skewed_differences_at_n30():
    rng = np.random.default_rng(301)
    d = rng.lognormal(0.0, 0.5, (R, 30))
    true_mean = math.exp(0.5**2 / 2)
    ci = bca_interval(d, 0.95, 999, np.random.default_rng(3))
    coverage = float(np.mean((ci.low <= true_mean) & (true_mean <= ci.high)))
    assert 0.95 - _three_se(0.95) - 0.02 <= coverage <= 0.95 + _three_se(0.95)
