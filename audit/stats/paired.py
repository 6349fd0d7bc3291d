"""Which arms are compared, and the paired differences over the seeds both arms completed.

A comparison pairs a candidate arm (the one WITH the component, or the baseline against a
reference) with its comparator on the same seeds. A planned (arm, seed) without a usable
value is attrition: listed, never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audit.errors import InputError, Location

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Contrast:
    """One planned comparison: `target` is a component or a reference arm."""

    target: str
    kind: str  # "component" | "reference"
    candidate_arm: str
    comparator_arm: str


@dataclass(frozen=True)
class Attrition:
    arm: str
    seed: int
    reason: str
    status: str
    metric: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "arm": self.arm,
            "seed": self.seed,
            "reason": self.reason,
            "status": self.status,
        }
        if self.metric is not None:
            data["metric"] = self.metric
        return data


@dataclass(frozen=True)
class TrialTable:
    """Every trial by (arm, seed): its status, its reason and its metrics."""

    planned_seeds: tuple[int, ...]
    status: dict[tuple[str, int], str]
    reason: dict[tuple[str, int], str | None]
    metrics: dict[tuple[str, int], dict[str, float]]

    def value(self, arm: str, seed: int, metric: str) -> float | None:
        if self.status.get((arm, seed)) != "succeeded":
            return None
        value = self.metrics.get((arm, seed), {}).get(metric)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def why_missing(self, arm: str, seed: int, metric: str) -> Attrition:
        key = (arm, seed)
        status = self.status.get(key)
        if status is None:
            return Attrition(arm, seed, "no trial record in results.json", "missing")
        if status != "succeeded":
            detail = self.reason.get(key)
            text = f"trial {status}" + (f": {detail}" if detail else "")
            return Attrition(arm, seed, text, status)
        raw = self.metrics.get(key, {}).get(metric)
        text = f"metric {metric!r} " + ("missing" if raw is None else f"not finite ({raw})")
        return Attrition(arm, seed, text, "succeeded", metric)


def trial_table(results: Mapping[str, Any], source: str) -> TrialTable:
    status: dict[tuple[str, int], str] = {}
    reason: dict[tuple[str, int], str | None] = {}
    metrics: dict[tuple[str, int], dict[str, float]] = {}
    for index, trial in enumerate(results["trials"]):
        key = (str(trial["arm"]), int(trial["seed"]))
        if key in status:
            raise InputError(
                f"duplicate trial for arm {key[0]!r} seed {key[1]}",
                location=Location(source, f"/trials/{index}"),
            )
        status[key] = str(trial["status"])
        reason[key] = trial.get("reason")
        metrics[key] = {str(k): float(v) for k, v in (trial.get("metrics") or {}).items()}
    seeds = tuple(int(s) for s in results["plan"]["seeds"])
    return TrialTable(seeds, status, reason, metrics)


@dataclass
class Pairing:
    """Paired values of one metric for candidate and comparator on their shared seeds."""

    contrast: Contrast
    metric: str
    seeds: list[int] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)
    comparator: list[float] = field(default_factory=list)
    attrition: list[Attrition] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.seeds)

    def diffs(self) -> Floats:
        return np.asarray(self.candidate, dtype=np.float64) - np.asarray(
            self.comparator, dtype=np.float64
        )


def pair(table: TrialTable, contrast: Contrast, metric: str) -> Pairing:
    pairing = Pairing(contrast, metric)
    for seed in table.planned_seeds:
        cand = table.value(contrast.candidate_arm, seed, metric)
        comp = table.value(contrast.comparator_arm, seed, metric)
        if cand is not None and comp is not None:
            pairing.seeds.append(seed)
            pairing.candidate.append(cand)
            pairing.comparator.append(comp)
            continue
        for arm, value in ((contrast.candidate_arm, cand), (contrast.comparator_arm, comp)):
            if value is None:
                pairing.attrition.append(table.why_missing(arm, seed, metric))
    return pairing


def study_attrition(
    table: TrialTable, arms: Iterable[str], metrics: Iterable[str]
) -> list[Attrition]:
    """Every planned (arm, seed) that lacks a usable value for some metric, once each."""
    found: list[Attrition] = []
    metric_names = list(metrics)
    for arm in arms:
        for seed in table.planned_seeds:
            missing = [m for m in metric_names if table.value(arm, seed, m) is None]
            if not missing:
                continue
            if table.status.get((arm, seed)) == "succeeded":
                for metric in missing:
                    found.append(table.why_missing(arm, seed, metric))
            else:
                found.append(table.why_missing(arm, seed, missing[0]))
    return found


# -- which arm pairs with which -------------------------------------------------------


def _plan_error(source: str, message: str) -> InputError:
    return InputError(message, location=Location(source, "/plan/arms"))


def factorial_cells(arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arms that are cells of a factorial design: every arm that carries `factors`.

    The protocol engine names the all-on cell `baseline` (kind baseline) and the others
    kind factorial, so the kind alone is not enough.
    """
    return [a for a in arms if a.get("factors") and a.get("kind") in ("baseline", "factorial")]


def _factorial_cell(arms: list[dict[str, Any]], wanted: dict[str, bool]) -> str | None:
    for arm in factorial_cells(arms):
        if dict(arm["factors"]) == wanted:
            return str(arm["name"])
    return None


def contrasts(plan: Mapping[str, Any], components: list[str], source: str) -> list[Contrast]:
    """The comparisons the design implies, read from plan.arms kinds (never from names)."""
    arms: list[dict[str, Any]] = list(plan["arms"])
    design = str(plan["design"])
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        by_kind.setdefault(str(arm["kind"]), []).append(arm)
    all_on = dict.fromkeys(components, True)
    baseline = next((str(a["name"]) for a in by_kind.get("baseline", [])), None)
    if baseline is None and design == "full-factorial":
        baseline = _factorial_cell(arms, all_on)
    if baseline is None:
        raise _plan_error(source, "the plan has no baseline arm")
    found: list[Contrast] = []
    for component in components:
        found.append(_component_contrast(design, component, arms, by_kind, baseline, source))
    for arm in by_kind.get("reference", []):
        found.append(Contrast(str(arm["name"]), "reference", baseline, str(arm["name"])))
    return found


def _component_contrast(
    design: str,
    component: str,
    arms: list[dict[str, Any]],
    by_kind: dict[str, list[dict[str, Any]]],
    baseline: str,
    source: str,
) -> Contrast:
    if design == "full-factorial":
        factors = {str(k) for a in factorial_cells(arms) for k in a["factors"]}
        wanted = {c: c != component for c in factors}
        cell = _factorial_cell(arms, wanted)
        if cell is None:
            raise _plan_error(source, f"no factorial cell with only {component!r} switched off")
        return Contrast(component, "component", baseline, cell)
    isolating = [a for a in by_kind.get("component", []) if a.get("component") == component]
    if len(isolating) != 1:
        raise _plan_error(
            source, f"expected exactly one component arm for {component!r}, found {len(isolating)}"
        )
    arm = str(isolating[0]["name"])
    if design == "add-one":
        base = next((str(a["name"]) for a in by_kind.get("base", [])), None)
        if base is None:
            raise _plan_error(source, "an add-one plan needs a base arm (all components off)")
        return Contrast(component, "component", arm, base)
    return Contrast(component, "component", baseline, arm)
