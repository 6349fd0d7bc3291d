"""Sign-flip permutation tests for paired differences, and the Wilcoxon cross-check.

Under the null hypothesis of no effect the sign of each paired difference is a fair coin,
so the null distribution of the mean is the mean over all 2^n sign patterns. For n up to
EXACT_MAX_N every pattern is enumerated (exact p); beyond that a seeded Monte Carlo sample
is drawn and the p-value counts the observed pattern (never 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Alternative = Literal["two-sided", "greater", "less"]

EXACT_MAX_N = 20
# The same relative tolerance scipy.stats.permutation_test uses, so null statistics equal
# to the observed one up to rounding count as "at least as extreme".
_RTOL = 100 * float(np.finfo(np.float64).eps)
_MC_CHUNK = 2048


@dataclass(frozen=True)
class PermutationResult:
    p_value: float
    method: str
    n: int
    resamples: int | None
    exact: bool
    alternative: Alternative


def sign_flip_null(diffs: Floats) -> Floats:
    """Mean of every one of the 2^n sign patterns (entry k: bit i of k flips observation n-1-i).

    Built by doubling: after step i the array holds the sums over every sign pattern of the
    first i+1 observations, so memory and time are O(2^n) instead of the O(n 2^n) of a
    pattern matrix.
    """
    d = np.asarray(diffs, dtype=np.float64)
    sums = np.zeros(1, dtype=np.float64)
    for value in d:
        sums = np.concatenate((sums + value, sums - value))
    out: Floats = sums / d.size
    return out


def _tail_p(null: Floats, observed: float, alternative: Alternative) -> Floats:
    gamma = abs(observed) * _RTOL
    greater = np.count_nonzero(null >= observed - gamma)
    less = np.count_nonzero(null <= observed + gamma)
    return np.array([greater, less], dtype=np.float64)


def sign_flip_test(
    diffs: Floats,
    *,
    alternative: Alternative = "two-sided",
    resamples: int = 9999,
    rng: np.random.Generator | None = None,
    exact_max_n: int = EXACT_MAX_N,
    null_shift: float = 0.0,
) -> PermutationResult:
    """Test H0: the paired differences are symmetric about `null_shift`.

    Two-sided p = 2 * min(one-sided p), capped at 1 (scipy's convention; for the exactly
    symmetric sign-flip distribution it equals the share of |T*| >= |T|).
    """
    d = np.asarray(diffs, dtype=np.float64) - null_shift
    n = d.size
    if n == 0:
        return PermutationResult(1.0, "sign-flip permutation", 0, None, True, alternative)
    observed = float(d.mean())
    if n <= exact_max_n:
        greater, less = _tail_p(sign_flip_null(d), observed, alternative) / 2.0**n
        used: int | None = None
        exact = True
    else:
        if rng is None:
            raise ValueError("a seeded Generator is required for the Monte Carlo test")
        counts = np.zeros(2, dtype=np.float64)
        done = 0
        while done < resamples:
            size = min(_MC_CHUNK, resamples - done)
            signs = 1.0 - 2.0 * rng.integers(0, 2, (size, n))
            counts += _tail_p(signs @ d / n, observed, alternative)
            done += size
        # Counting the observed pattern keeps a Monte Carlo p-value valid (never 0).
        greater, less = (counts + 1.0) / (resamples + 1.0)
        used = resamples
        exact = False
    if alternative == "greater":
        p = greater
    elif alternative == "less":
        p = less
    else:
        p = min(1.0, 2.0 * min(greater, less))
    method = "exact sign-flip permutation" if exact else "Monte Carlo sign-flip permutation"
    return PermutationResult(float(p), method, n, used, exact, alternative)


@dataclass(frozen=True)
class WilcoxonResult:
    statistic: float | None
    p_value: float | None
    method: str
    note: str | None


def wilcoxon_crosscheck(diffs: Floats) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test via scipy, for readers who expect it."""
    from scipy import stats as sps

    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0 or not np.any(d != 0):
        return WilcoxonResult(None, None, "wilcoxon signed-rank (scipy)", "all differences are 0")
    with warnings.catch_warnings(record=True) as caught:
        # scipy warns when ties or zeros force the normal approximation; that is the
        # documented behaviour we want, so the warning becomes a note in the output.
        warnings.simplefilter("always")
        result = sps.wilcoxon(d, alternative="two-sided", zero_method="wilcox")
    note = "; ".join(str(w.message) for w in caught) or None
    method = "wilcoxon signed-rank (scipy, method=auto)"
    return WilcoxonResult(float(result.statistic), float(result.pvalue), method, note)


def sign_patterns(n: int) -> NDArray[np.int8]:
    """All 2^n sign vectors as rows: row k has -1 where bit i of k is set (bit tricks, no loop)."""
    bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)) & 1
    signs: NDArray[np.int8] = (1 - 2 * bits).astype(np.int8)
    return signs


def exact_sign_flip_pvalues(diffs: Floats, max_cells: int = 1 << 23) -> Floats:
    """Exact two-sided sign-flip p for every row of `diffs` (shape (K, n), n <= EXACT_MAX_N).

    The null distributions of a block of rows are built together by doubling (column k
    of the block holds the sum for sign pattern k); blocks keep memory near `max_cells`
    floats (64 MB) even at n = 20.
    """
    d = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    k, n = d.shape
    if n > EXACT_MAX_N:
        raise ValueError(f"exact enumeration is limited to n <= {EXACT_MAX_N}")
    out = np.empty(k, dtype=np.float64)
    rows_per_block = max(1, max_cells // 2**n)
    for start in range(0, k, rows_per_block):
        block = d[start : start + rows_per_block]
        sums = np.zeros((block.shape[0], 1), dtype=np.float64)
        for column in block.T:
            sums = np.concatenate((sums + column[:, None], sums - column[:, None]), axis=1)
        null = sums / n
        observed = block.mean(axis=1, keepdims=True)
        gamma = np.abs(observed) * _RTOL
        greater = np.count_nonzero(null >= observed - gamma, axis=1)
        less = np.count_nonzero(null <= observed + gamma, axis=1)
        out[start : start + block.shape[0]] = np.minimum(
            1.0, 2.0 * np.minimum(greater, less) / 2.0**n
        )
    return out
