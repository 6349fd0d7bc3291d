"""Full-factorial designs: main effects and two-way interactions, per seed, BH-adjusted.

Effects use the usual +/-1 coding: an effect is the mean over the cells where its sign is
+1 minus the mean over the cells where it is -1, computed within each seed (so seeds stay
paired) and then summarised across seeds like any paired difference. Exploratory only:
the gate never looks at these numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audit.stats.ci import mean_intervals
from audit.stats.multiplicity import benjamini_hochberg
from audit.stats.paired import TrialTable
from audit.stats.permutation import sign_flip_test

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class FactorialCell:
    arm: str
    factors: dict[str, bool]


def contrast_matrix(
    cells: list[FactorialCell], factors: list[str]
) -> tuple[list[tuple[str, ...]], Floats]:
    """Rows: main effects then two-way interactions; columns: cells. Row @ y = the effect."""
    coding = np.array([[1.0 if c.factors.get(f) else -1.0 for f in factors] for c in cells])
    names: list[tuple[str, ...]] = [(f,) for f in factors]
    signs = [coding[:, i] for i in range(len(factors))]
    for i, j in itertools.combinations(range(len(factors)), 2):
        names.append((factors[i], factors[j]))
        signs.append(coding[:, i] * coding[:, j])
    rows = []
    for sign in signs:
        plus, minus = sign > 0, sign < 0
        rows.append(
            np.where(plus, 1.0 / max(1, plus.sum()), 0.0)
            - np.where(minus, 1.0 / max(1, minus.sum()), 0.0)
        )
    return names, np.array(rows)


def factorial_effects(
    table: TrialTable,
    cells: list[FactorialCell],
    metrics: list[dict[str, Any]],
    *,
    confidence: float,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    factors = sorted({f for c in cells for f in c.factors})
    names, contrast = contrast_matrix(cells, factors)
    effects: list[dict[str, Any]] = []
    samples: list[Floats] = []
    for metric in metrics:
        name = str(metric["name"])
        complete = [
            s
            for s in table.planned_seeds
            if all(table.value(c.arm, s, name) is not None for c in cells)
        ]
        y = np.array([[table.value(c.arm, s, name) or 0.0 for s in complete] for c in cells])
        per_seed = contrast @ y if complete else np.zeros((len(names), 0))
        for effect_name, row in zip(names, per_seed, strict=True):
            samples.append(row)
            effects.append(
                {
                    "effect": ":".join(effect_name),
                    "kind": "main" if len(effect_name) == 1 else "interaction",
                    "factors": list(effect_name),
                    "metric": name,
                    "goal": metric["goal"],
                    "n": int(row.size),
                    "seeds": complete,
                }
            )
    intervals = mean_intervals(samples, confidence)
    p_values = []
    for index, (effect, sample, interval) in enumerate(
        zip(effects, samples, intervals, strict=True)
    ):
        test = sign_flip_test(
            sample, resamples=resamples, rng=np.random.default_rng([seed, 2, index])
        )
        p_values.append(test.p_value)
        effect["estimate"] = {
            "value": float(sample.mean()) if sample.size else None,
            "method": "mean over seeds of the per-seed +/-1 contrast",
            "n": int(sample.size),
        }
        effect["ci"] = {
            "low": interval.low,
            "high": interval.high,
            "level": interval.level,
            "method": interval.method,
            "n": interval.n,
            "resamples": interval.resamples,
            "seed": interval.seed,
        }
        effect["p_value"] = {
            "value": test.p_value,
            "method": test.method,
            "n": test.n,
            "resamples": test.resamples,
            "alternative": test.alternative,
            "seed": None if test.exact else seed,
        }
    adjusted = benjamini_hochberg(p_values)
    for effect, value in zip(effects, adjusted, strict=True):
        effect["p_adjusted"] = {
            "value": float(value),
            "method": "benjamini-hochberg over every factorial effect (exploratory, FDR)",
        }
    return {
        "factors": factors,
        "cells": [{"arm": c.arm, "factors": c.factors} for c in cells],
        "method": "per-seed +/-1 contrasts of the 2^k cells; main effects and two-way interactions",
        "correction": "benjamini-hochberg",
        "effects": effects,
    }
