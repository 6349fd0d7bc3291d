"""Property tests: invariants every paired analysis must keep, whatever the data."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audit.stats.ci import bca_interval, mean_intervals, t_interval
from audit.stats.multiplicity import benjamini_hochberg, holm
from audit.stats.permutation import sign_flip_test
from audit.stats.ttest import boundary_tests

# Metric-like values: bounded, with enough resolution that differences are not all ties.
values = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


def paired_arrays(min_n: int = 2, max_n: int = 14):
    return st.integers(min_n, max_n).flatmap(
        lambda n: st.tuples(
            arrays(np.float64, n, elements=values), arrays(np.float64, n, elements=values)
        )
    )


@settings(max_examples=60, deadline=None)
@given(paired_arrays(1, 16), st.sampled_from(["two-sided", "greater", "less"]))
def test_p_value_is_a_probability(pair, alternative):
    a, b = pair
    p = sign_flip_test(a - b, alternative=alternative).p_value
    assert 0.0 <= p <= 1.0


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(21, 40), elements=values))
def test_monte_carlo_p_value_is_a_probability(d):
    p = sign_flip_test(d, resamples=199, rng=np.random.default_rng(0)).p_value
    assert 0.0 < p <= 1.0


# Multiples of 1/64 within +-2^20: sums and differences of these are exact in float64, so
# adding a constant to both arms leaves every paired difference bit-for-bit unchanged.
dyadic = st.integers(-(2**26), 2**26).map(lambda k: k / 64)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 30).flatmap(
        lambda n: st.lists(st.tuples(dyadic, dyadic), min_size=n, max_size=n)
    ),
    dyadic,
)
def test_adding_a_constant_to_both_arms_changes_nothing(rows, shift):
    a = np.array([r[0] for r in rows])
    b = np.array([r[1] for r in rows])
    rng = np.random.default_rng
    before = (
        sign_flip_test(a - b, rng=rng(0)).p_value,
        mean_intervals([a - b], 0.95)[0],
        _boundary(a - b),
    )
    after = (
        sign_flip_test((a + shift) - (b + shift), rng=rng(0)).p_value,
        mean_intervals([(a + shift) - (b + shift)], 0.95)[0],
        _boundary((a + shift) - (b + shift)),
    )
    assert before == after


def _boundary(d: np.ndarray) -> tuple[float, float]:
    tests = boundary_tests(d, 0.01, 0.05)
    return float(tests.p_value[0]), float(tests.lower[0])


@settings(max_examples=60, deadline=None)
@given(paired_arrays(2, 30), st.floats(min_value=-5, max_value=5))
def test_claim_test_and_its_bound_never_disagree(pair, boundary):
    a, b = pair
    d = a - b
    tests = boundary_tests(d, boundary, 0.05)
    p, low = float(tests.p_value[0]), float(tests.lower[0])
    if np.ptp(d) == 0 or not np.isfinite(p):
        return  # no spread: the verdict is blocked as degenerate, whatever p says
    sem = float(d.std(ddof=1)) / np.sqrt(d.size)
    if abs(low - boundary) <= 1e-9 * (abs(boundary) + sem + 1e-300):
        return  # on the boundary up to rounding
    assert (p < 0.05) == (low > boundary)


@settings(max_examples=60, deadline=None)
@given(paired_arrays())
def test_swapping_arms_flips_the_sign(pair):
    a, b = pair
    forward = sign_flip_test(a - b)
    backward = sign_flip_test(b - a)
    assert forward.p_value == backward.p_value
    ci_f = t_interval((a - b)[None, :], 0.95)
    ci_b = t_interval((b - a)[None, :], 0.95)
    assert np.allclose([ci_f.low[0], ci_f.high[0]], [-ci_b.high[0], -ci_b.low[0]], equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(paired_arrays(2, 40))
def test_confidence_interval_contains_the_point_estimate(pair):
    a, b = pair
    d = a - b
    (interval,) = mean_intervals([d], 0.95)
    mean = float(d.mean())
    tolerance = 1e-9 * (1 + np.max(np.abs(d)))
    assert interval.low is not None
    assert interval.high is not None
    assert interval.low - tolerance <= mean <= interval.high + tolerance


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.integers(20, 40), elements=values), st.integers(0, 2**32))
def test_bca_swapping_arms_mirrors_the_interval(d, seed):
    # Same resamples for d and -d: the BCa interval of -d is the mirror image.
    forward = bca_interval(d[None, :], 0.95, 499, np.random.default_rng(seed))
    backward = bca_interval(-d[None, :], 0.95, 499, np.random.default_rng(seed))
    scale = 1e-9 * (1 + np.max(np.abs(d)))
    assert abs(forward.low[0] + backward.high[0]) <= scale
    assert abs(forward.high[0] + backward.low[0]) <= scale


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=30))
def test_adjusted_p_values_are_probabilities_and_never_smaller(p):
    raw = np.array(p)
    for adjusted in (holm(raw), benjamini_hochberg(raw)):
        assert np.all(adjusted >= raw - 1e-15)
        assert np.all((adjusted >= 0) & (adjusted <= 1))
    assert np.all(holm(raw) >= benjamini_hochberg(raw) - 1e-15)
