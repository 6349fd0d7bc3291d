"""Shape checks of the paired differences: skew, outliers, and the degenerate sample.

The claim test is a t-test: exact for normal differences and conservative for
symmetric heavy tails, but strong skew against the claim's direction (a few seeds that
collapse) makes it approve more often than alpha. These checks tell the reader when
the verdict leans on that assumption; only a degenerate sample blocks a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

# |adjusted skewness| above this flags the sample. Under normal differences G1 has an
# SD of about 0.75 at n = 8 and 0.43 at n = 30, so 1.5 is rarely crossed by chance
# (the false-alarm and detection rates are measured in docs/methods.md).
SKEW_LIMIT = 1.5
# Modified z-score (Iglewicz & Hoaglin 1993): 0.6745 |x - median| / MAD. Their 3.5 flags
# 9-14% of normal samples of 8-30 seeds (the MAD of few points is itself noisy); 5 flags
# 0.7-5%, measured alongside the skew limit in bench/stats_operating_characteristics.py.
OUTLIER_Z = 5.0
DEGENERATE_CAUSE = (
    "all paired differences are identical, so the metric did not vary with the seed: "
    "most likely the seed never reaches training (MLAUDIT_SEED unused), or every arm "
    "runs the same code or reads a cached result"
)


def skewness(good: Floats) -> Floats:
    """Adjusted Fisher-Pearson skewness G1 of each row (nan when n < 3 or no spread)."""
    d = np.atleast_2d(np.asarray(good, dtype=np.float64))
    n = d.shape[1]
    if n < 3:
        return np.full(d.shape[0], np.nan)
    centred = d - d.mean(axis=1, keepdims=True)
    m2 = np.mean(centred**2, axis=1)
    m3 = np.mean(centred**3, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = m3 / m2**1.5
    out: Floats = np.where(m2 > 0, g1 * np.sqrt(n * (n - 1)) / (n - 2), np.nan)
    return out


def outlier_mask(good: Floats) -> NDArray[np.bool_]:
    """Modified z-score outliers per row; a row with MAD 0 flags nothing."""
    d = np.atleast_2d(np.asarray(good, dtype=np.float64))
    median = np.median(d, axis=1, keepdims=True)
    mad = np.median(np.abs(d - median), axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * np.abs(d - median) / mad
    mask: NDArray[np.bool_] = np.where(mad > 0, z > OUTLIER_Z, False)
    return mask


def degenerate(good: Floats) -> NDArray[np.bool_]:
    """Rows whose values are all identical (n >= 2)."""
    d = np.atleast_2d(np.asarray(good, dtype=np.float64))
    out: NDArray[np.bool_] = (d.shape[1] >= 2) & (np.ptp(d, axis=1) == 0)
    return out


def flagged(good: Floats) -> NDArray[np.bool_]:
    """Rows the report warns about: strong skew or at least one outlier."""
    g1 = skewness(good)
    out: NDArray[np.bool_] = (np.abs(np.nan_to_num(g1)) > SKEW_LIMIT) | outlier_mask(good).any(
        axis=1
    )
    return out


@dataclass(frozen=True)
class ShapeDiagnostic:
    """What the shape of one comparison's differences means for its verdict."""

    n: int
    skewness: float | None
    outlier_seeds: list[int] = field(default_factory=list)
    degenerate: bool = False
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "skewness": self.skewness,
            "skew_limit": SKEW_LIMIT,
            "outlier_seeds": self.outlier_seeds,
            "outlier_rule": f"|modified z| > {OUTLIER_Z:g} (Iglewicz & Hoaglin)",
            "degenerate": self.degenerate,
            "flagged": self.warning is not None,
            "warning": self.warning,
            "method": "adjusted Fisher-Pearson skewness G1 of the differences (good direction)",
        }


def diagnose(good: Floats, seeds: list[int]) -> ShapeDiagnostic:
    """Skew, outliers and degeneracy of one comparison's good-direction differences."""
    d = np.asarray(good, dtype=np.float64)
    if d.size < 2:
        return ShapeDiagnostic(int(d.size), None)
    row = d[None, :]
    if bool(degenerate(row)[0]):
        return ShapeDiagnostic(int(d.size), None, [], True, DEGENERATE_CAUSE)
    g1 = float(skewness(row)[0])
    outliers = [s for s, bad in zip(seeds, outlier_mask(row)[0], strict=True) if bad]
    skew = None if np.isnan(g1) else g1
    return ShapeDiagnostic(int(d.size), skew, outliers, False, _warning(skew, outliers))


def _warning(skew: float | None, outliers: list[int]) -> str | None:
    parts = []
    if skew is not None and abs(skew) > SKEW_LIMIT:
        side = "left (a few seeds much worse)" if skew < 0 else "right (a few seeds much better)"
        parts.append(f"the differences are strongly skewed to the {side}, G1 = {skew:.2f}")
    if outliers:
        parts.append(f"seed(s) {', '.join(str(s) for s in outliers)} are outliers")
    if not parts:
        return None
    effect = (
        "the t-based verdict can approve more often than alpha when the skew is to the "
        "left (measured in docs/methods.md); look at those seeds before trusting the verdict"
    )
    return "; ".join(parts) + ": " + effect
