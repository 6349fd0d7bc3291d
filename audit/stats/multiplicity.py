"""Multiplicity corrections: Holm and Bonferroni for the gate, Benjamini-Hochberg for exploration.

Pure numpy on a vector of p-values; the caller decides which comparisons form a family.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]


def holm(p_values: Sequence[float] | Floats) -> Floats:
    """Holm-Bonferroni step-down adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    # Step-down: an adjusted p can never be smaller than the one before it.
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted


def bonferroni(p_values: Sequence[float] | Floats) -> Floats:
    p = np.asarray(p_values, dtype=np.float64)
    adjusted: Floats = np.minimum(p * p.size, 1.0)
    return adjusted


def benjamini_hochberg(p_values: Sequence[float] | Floats) -> Floats:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    # Step-up: take the running minimum from the largest p downwards.
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty_like(p)
    adjusted[order] = adjusted_sorted
    return adjusted


def adjust(p_values: Sequence[float] | Floats, method: str) -> Floats:
    """Adjust with the EDD's `correction` (holm, bonferroni, none) or `bh`."""
    if method == "holm":
        return holm(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.array(p_values, dtype=np.float64)
    raise ValueError(f"unknown multiplicity correction {method!r}")
