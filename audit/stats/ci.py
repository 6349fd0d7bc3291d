"""Confidence intervals for the mean paired difference: Student-t (used) and BCa (measured).

Every function works on a 2-D array `diffs` of shape (comparisons, seeds) so that many
comparisons with the same number of seeds share one pass of numpy work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

Floats = NDArray[np.float64]
# Index draws beyond this many cells (128 MB of int64) are split into blocks.
_MAX_INDEX_CELLS = 1 << 24


@dataclass(frozen=True)
class Intervals:
    """Lower and upper bounds, one per row of the input, and what produced them."""

    low: Floats
    high: Floats
    method: str
    # Rows where BCa was undefined and the percentile interval was used instead.
    fallback: NDArray[np.bool_] | None = None


def t_interval(diffs: Floats, confidence: float) -> Intervals:
    """Two-sided Student-t interval for the mean of each row (needs n >= 2)."""
    d = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    n = d.shape[1]
    mean = d.mean(axis=1)
    sem = d.std(axis=1, ddof=1) / np.sqrt(n)
    # scipy.special's t quantile is what scipy.stats.t.ppf calls (bit-identical), without
    # importing scipy.stats (most of a cold `mlaudit gate`).
    half = float(special.stdtrit(n - 1, 0.5 + confidence / 2.0)) * sem
    return Intervals(mean - half, mean + half, "student-t")


def resample_means(diffs: Floats, resamples: int, rng: np.random.Generator) -> Floats:
    """Bootstrap distribution of the row means, shape (comparisons, resamples).

    The resample indices are drawn exactly as scipy.stats.bootstrap draws them
    (`rng.integers(0, n, (resamples, n))`), so with the same Generator state both give
    the same resamples. Turning indices into per-resample counts and multiplying by the
    data replaces a (comparisons x resamples x n) gather with one small matrix product.
    Very large studies are drawn in blocks of resamples to bound memory.
    """
    d = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    n = d.shape[1]
    block = resamples if resamples * n <= _MAX_INDEX_CELLS else max(1, _MAX_INDEX_CELLS // n)
    means = np.empty((d.shape[0], resamples), dtype=np.float64)
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        idx = rng.integers(0, n, (size, n))
        offsets = (np.arange(size, dtype=np.int64) * n)[:, None]
        counts = np.bincount((idx + offsets).ravel(), minlength=size * n)
        counts = counts.reshape(size, n).astype(np.float64)
        means[:, start : start + size] = (counts @ d.T).T / n
    return means


def _row_quantiles(rows: Floats, q: Floats) -> Floats:
    """np.quantile(method='linear') of each row at that row's own probabilities.

    `q` has shape (rows, k). Only the 2k order statistics around the wanted positions
    are needed, so each row is partitioned (O(B)) instead of sorted (O(B log B)).
    """
    b = rows.shape[1]
    position = np.clip(q, 0.0, 1.0) * (b - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, b - 1)
    weight = position - below
    out = np.empty(q.shape, dtype=np.float64)
    for r in range(rows.shape[0]):
        kth = np.unique(np.concatenate((below[r], above[r])))
        part = np.partition(rows[r], kth)
        lo, hi = part[below[r]], part[above[r]]
        out[r] = lo + (hi - lo) * weight[r]
    return out


def bca_interval(
    diffs: Floats, confidence: float, resamples: int, rng: np.random.Generator
) -> Intervals:
    """Two-sided BCa bootstrap interval for the mean of each row (Efron & Tibshirani 14.3).

    Rows whose values are all equal have a degenerate bootstrap distribution; their
    interval is the single point (the same answer the t interval gives).
    """
    d = np.atleast_2d(np.asarray(diffs, dtype=np.float64))
    n = d.shape[1]
    theta_hat = d.mean(axis=1)
    theta_boot = resample_means(d, resamples, rng)

    # Bias correction: where the estimate sits in its own bootstrap distribution
    # (ties count half, as scipy's percentileofscore(kind='mean') does).
    below = np.count_nonzero(theta_boot < theta_hat[:, None], axis=1)
    at_or_below = np.count_nonzero(theta_boot <= theta_hat[:, None], axis=1)
    z0 = special.ndtri((below + at_or_below) / (2.0 * resamples))

    # Acceleration from the jackknife; for the mean the leave-one-out values are closed form.
    jack = (d.sum(axis=1, keepdims=True) - d) / (n - 1)
    u = (n - 1) * (jack.mean(axis=1, keepdims=True) - jack)
    num = np.sum(u**3, axis=1) / n**3
    den = np.sum(u**2, axis=1) / n**2
    degenerate = (np.ptp(d, axis=1) == 0) | ~(den > 0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        accel = np.where(degenerate, 0.0, num / np.where(degenerate, 1.0, den) ** 1.5 / 6.0)
        z_alpha = float(special.ndtri((1.0 - confidence) / 2.0))
        num1 = z0 + z_alpha
        q_low = special.ndtr(z0 + num1 / (1.0 - accel * num1))
        num2 = z0 - z_alpha
        q_high = special.ndtr(z0 + num2 / (1.0 - accel * num2))
    # Where BCa is undefined (the estimate outside its bootstrap distribution, extreme
    # acceleration) fall back to the plain percentile interval and say so.
    fallback = ~degenerate & ~(np.isfinite(q_low) & np.isfinite(q_high))
    q_low = np.where(degenerate, 0.5, np.where(fallback, (1.0 - confidence) / 2.0, q_low))
    q_high = np.where(degenerate, 0.5, np.where(fallback, (1.0 + confidence) / 2.0, q_high))

    bounds = _row_quantiles(theta_boot, np.stack((q_low, q_high), axis=1))
    low = np.where(degenerate, theta_hat, bounds[:, 0])
    high = np.where(degenerate, theta_hat, bounds[:, 1])
    return Intervals(low, high, "bca-bootstrap", fallback)


def wilson_interval(successes: float, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval for a proportion (stays inside [0, 1] at small n)."""
    if n <= 0:
        return (0.0, 1.0)
    z = float(special.ndtri(0.5 + confidence / 2.0))
    p = successes / n
    denom = 1.0 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, float(centre - half)), min(1.0, float(centre + half)))


# The CI method, chosen by measurement (bench/stats_operating_characteristics.py, table in
# docs/methods.md): the Student-t interval covers 0.946-0.975 at n = 8-30 for normal,
# t(3) and lognormal-per-arm noise; BCa under-covers there (0.80-0.94), so it is kept
# only as a measured alternative.
@dataclass(frozen=True)
class MeanInterval:
    """The CI of one comparison, with everything needed to reproduce it."""

    low: float | None
    high: float | None
    level: float
    method: str
    n: int
    resamples: int | None = None
    seed: int | None = None
    stream: tuple[int, ...] | None = None


def mean_intervals(samples: list[Floats], confidence: float) -> list[MeanInterval]:
    """Two-sided Student-t CI of the mean of every sample (rows with the same n stacked)."""
    out: list[MeanInterval | None] = [None] * len(samples)
    by_n: dict[int, list[int]] = {}
    for index, sample in enumerate(samples):
        by_n.setdefault(int(np.asarray(sample).size), []).append(index)
    for n, indices in sorted(by_n.items()):
        if n < 2:
            for i in indices:
                out[i] = MeanInterval(None, None, confidence, "none (fewer than 2 pairs)", n)
            continue
        stacked = np.stack([np.asarray(samples[i], dtype=np.float64) for i in indices])
        t = t_interval(stacked, confidence)
        for row, i in enumerate(indices):
            out[i] = MeanInterval(float(t.low[row]), float(t.high[row]), confidence, t.method, n)
    return [item for item in out if item is not None]
