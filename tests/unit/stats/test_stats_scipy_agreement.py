"""audit.stats agrees with scipy.stats where the methods coincide.

The claim test (one-sided t against the boundary) and its bound are scipy's ttest_1samp.
BCa is no longer used by the analysis but is kept, measured, in the operating-
characteristics benchmark, so its agreement stays tested. Deterministic methods must
match to 1e-9. The BCa bootstrap is given the same Generator
seed scipy gets, so both draw identical resamples and must also match to 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from audit.stats.ci import bca_interval, t_interval, wilson_interval
from audit.stats.diagnostics import OUTLIER_Z, outlier_mask, skewness
from audit.stats.multiplicity import benjamini_hochberg, holm
from audit.stats.permutation import (
    exact_sign_flip_pvalues,
    sign_flip_null,
    sign_flip_test,
    sign_patterns,
    wilcoxon_crosscheck,
)
from audit.stats.ttest import boundary_tests, two_sided_p


def _paired(seed: int, n: int, shift: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.6, 0.05, n)
    return base + shift * 0.05 + rng.normal(0, 0.02, n), base


@pytest.mark.parametrize(("seed", "n"), [(1, 3), (2, 5), (3, 10), (4, 19), (5, 40)])
def test_t_interval_matches_ttest_rel(seed, n):
    a, b = _paired(seed, n)
    expected = sps.ttest_rel(a, b).confidence_interval(0.95)
    got = t_interval((a - b)[None, :], 0.95)
    assert got.low[0] == pytest.approx(expected.low, abs=1e-9)
    assert got.high[0] == pytest.approx(expected.high, abs=1e-9)


@pytest.mark.parametrize(("seed", "n", "level"), [(11, 20, 0.95), (12, 30, 0.95), (13, 50, 0.9)])
def test_bca_matches_scipy_bootstrap_on_the_same_resamples(seed, n, level):
    a, b = _paired(seed, n)
    d = a - b
    expected = sps.bootstrap(
        (d,),
        np.mean,
        confidence_level=level,
        n_resamples=9999,
        method="BCa",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    got = bca_interval(d[None, :], level, 9999, np.random.default_rng(seed))
    assert got.low[0] == pytest.approx(expected.low, abs=1e-9)
    assert got.high[0] == pytest.approx(expected.high, abs=1e-9)


def test_bca_batch_equals_row_by_row_on_shared_resamples():
    rng = np.random.default_rng(7)
    d = rng.lognormal(0, 1, (6, 25)) - 1.5
    batch = bca_interval(d, 0.95, 4999, np.random.default_rng(3))
    for row in range(6):
        single = bca_interval(d[row][None, :], 0.95, 4999, np.random.default_rng(3))
        assert batch.low[row] == pytest.approx(single.low[0], abs=1e-12)
        assert batch.high[row] == pytest.approx(single.high[0], abs=1e-12)


def test_bca_with_independent_resamples_agrees_within_monte_carlo_error():
    # Different draws: the bounds then differ by bootstrap noise only. With 20k resamples
    # the Monte Carlo SD of a 2.5% quantile of the mean is well below 5% of the CI width.
    a, b = _paired(21, 30)
    d = a - b
    expected = sps.bootstrap(
        (d,), np.mean, n_resamples=20000, method="BCa", rng=np.random.default_rng(1)
    ).confidence_interval
    got = bca_interval(d[None, :], 0.95, 20000, np.random.default_rng(2))
    width = expected.high - expected.low
    assert abs(got.low[0] - expected.low) < 0.05 * width
    assert abs(got.high[0] - expected.high) < 0.05 * width


def test_bca_on_constant_differences_is_the_point():
    got = bca_interval(np.full((1, 25), 0.3), 0.95, 999, np.random.default_rng(0))
    assert got.low[0] == pytest.approx(0.3)
    assert got.high[0] == pytest.approx(0.3)


def _scipy_sign_flip(d: np.ndarray, alternative: str = "two-sided", **kwargs) -> float:
    result = sps.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        alternative=alternative,
        vectorized=True,
        **kwargs,
    )
    return float(result.pvalue)


@pytest.mark.parametrize(("seed", "n"), [(1, 2), (2, 4), (3, 8), (4, 12), (5, 16)])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_sign_flip_matches_scipy_permutation_test(seed, n, alternative):
    a, b = _paired(seed, n, shift=0.5)
    d = a - b
    expected = _scipy_sign_flip(d, alternative, n_resamples=np.inf)
    got = sign_flip_test(d, alternative=alternative)
    assert got.exact
    assert got.p_value == pytest.approx(expected, abs=1e-12)


def test_batched_exact_p_values_match_single_tests_and_scipy():
    rng = np.random.default_rng(9)
    d = rng.normal(0.2, 1.0, (12, 11))
    batch = exact_sign_flip_pvalues(d)
    for row in range(12):
        assert batch[row] == pytest.approx(sign_flip_test(d[row]).p_value, abs=1e-12)
        assert batch[row] == pytest.approx(_scipy_sign_flip(d[row], n_resamples=np.inf), abs=1e-12)


def test_doubling_enumerates_the_same_null_as_the_sign_pattern_matrix():
    d = np.random.default_rng(4).normal(size=9)
    by_patterns = np.sort(sign_patterns(9).astype(float) @ d / 9)
    assert np.allclose(np.sort(sign_flip_null(d)), by_patterns, atol=1e-12)
    assert sign_patterns(9).shape == (512, 9)


def test_monte_carlo_sign_flip_is_within_its_error_of_the_exact_p():
    # n = 22 is enumerable (4M patterns), so the Monte Carlo answer can be checked
    # against the exact one: allow 4 binomial SDs of a 9999-draw estimate.
    rng = np.random.default_rng(5)
    d = rng.normal(0.25, 1.0, 22)
    exact = sign_flip_test(d, exact_max_n=22).p_value
    mc = sign_flip_test(d, resamples=9999, rng=np.random.default_rng(6))
    assert not mc.exact
    assert mc.resamples == 9999
    sd = np.sqrt(exact * (1 - exact) / 9999)
    assert abs(mc.p_value - exact) < 4 * sd + 2 / 10000


def test_monte_carlo_p_is_never_zero():
    d = np.full(30, 1.0)
    result = sign_flip_test(d, resamples=999, rng=np.random.default_rng(0))
    assert result.p_value == pytest.approx(2 / 1000)


def test_min_exact_p_is_two_over_two_to_the_n():
    assert sign_flip_test(np.full(5, 0.1)).p_value == pytest.approx(2 / 32)
    assert sign_flip_test(np.full(5, 0.1), alternative="greater").p_value == pytest.approx(1 / 32)


def test_wilcoxon_crosscheck_is_scipy_wilcoxon():
    a, b = _paired(8, 12, shift=0.5)
    got = wilcoxon_crosscheck(a - b)
    expected = sps.wilcoxon(a, b)
    assert got.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert got.statistic == pytest.approx(expected.statistic)


def test_wilcoxon_with_zeros_does_not_warn_and_notes_why():
    got = wilcoxon_crosscheck(np.array([0.0, 0.1, 0.2, 0.1, -0.05, 0.3, 0.0, 0.2]))
    assert got.p_value is not None
    assert 0 <= got.p_value <= 1
    assert wilcoxon_crosscheck(np.zeros(6)).p_value is None


def test_benjamini_hochberg_matches_scipy_false_discovery_control():
    p = np.random.default_rng(3).uniform(0, 0.2, 17)
    assert np.allclose(benjamini_hochberg(p), sps.false_discovery_control(p), atol=1e-12)


def test_holm_on_a_worked_example():
    # Holm (1979): sorted p 0.01, 0.02, 0.03, 0.04 with m=4 -> 0.04, 0.06, 0.06, 0.06.
    got = holm([0.03, 0.01, 0.04, 0.02])
    assert np.allclose(got, [0.06, 0.04, 0.06, 0.06])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_wilson_interval_matches_binomtest():
    expected = sps.binomtest(7, 10).proportion_ci(0.95, method="wilson")
    low, high = wilson_interval(7, 10, 0.95)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


def test_blocked_resampling_for_large_studies_gives_the_same_kind_of_interval(monkeypatch):
    import audit.stats.ci as ci

    d = np.random.default_rng(12).normal(0.1, 1.0, (2, 60))
    whole = bca_interval(d, 0.95, 3000, np.random.default_rng(5))
    monkeypatch.setattr(ci, "_MAX_INDEX_CELLS", 60 * 700)  # forces 5 blocks
    blocked = bca_interval(d, 0.95, 3000, np.random.default_rng(5))
    width = whole.high - whole.low
    assert np.all(np.abs(blocked.low - whole.low) < 0.05 * width)
    assert np.all(np.abs(blocked.high - whole.high) < 0.05 * width)


@pytest.mark.parametrize(("seed", "n", "boundary"), [(1, 2, 0.0), (2, 8, 0.01), (3, 30, -0.02)])
def test_claim_test_matches_scipy_one_sided_ttest(seed, n, boundary):
    a, b = _paired(seed, n)
    d = a - b
    expected = sps.ttest_1samp(d, boundary, alternative="greater")
    got = boundary_tests(d[None, :], boundary, 0.05)
    assert got.p_value[0] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
    assert got.statistic[0] == pytest.approx(expected.statistic, rel=1e-12)
    assert got.lower[0] == pytest.approx(expected.confidence_interval(0.95).low, rel=1e-12)
    assert got.df == expected.df


def test_descriptive_p_matches_scipy_ttest_rel():
    a, b = _paired(9, 12)
    assert two_sided_p((a - b)[None, :])[0] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)


def test_skewness_matches_scipy_unbiased_skew():
    d = np.random.default_rng(4).lognormal(0, 1, (5, 17))
    assert np.allclose(skewness(d), sps.skew(d, axis=1, bias=False), rtol=1e-12)


def test_outlier_rule_is_the_modified_z_score_with_scipys_normal_mad():
    rng = np.random.default_rng(6)
    d = rng.standard_t(2, (40, 15))
    z = (
        np.abs(d - np.median(d, axis=1, keepdims=True))
        / sps.median_abs_deviation(d, axis=1, scale="normal")[:, None]
    )
    # 0.6745 is the normal quantile scipy's scale="normal" divides by (to 4 digits).
    assert np.array_equal(outlier_mask(d), np.abs(z * 0.6745 / sps.norm.ppf(0.75)) > OUTLIER_Z)
    assert outlier_mask(d).any()


def test_a_bh_family_reads_the_claims_like_scipy_false_discovery_control():
    import copy
    import hashlib
    import json
    from pathlib import Path

    import rfc8785

    from audit.stats.analysis import analyze_results

    study = Path(__file__).resolve().parents[2] / "fixtures" / "study" / "results.json"
    results = copy.deepcopy(json.loads(study.read_text()))
    results["edd"]["document"]["decision"]["correction"] = "bh"
    results["edd"]["digest"] = hashlib.sha256(rfc8785.dumps(results["edd"]["document"])).hexdigest()
    analysis = analyze_results(results, results_sha256="0" * 64)
    claimed = [c for c in analysis["comparisons"] if c.get("family")]
    raw = np.array([c["p_value"]["value"] for c in claimed])
    expected = sps.false_discovery_control(raw)
    assert [c["family"]["correction"] for c in claimed] == ["bh"] * len(claimed)
    assert np.allclose([c["family"]["p_adjusted"] for c in claimed], expected, atol=1e-12)
