"""What the model cards say about performance and limits, read from analysis.json.

The numbers are the analysis' own (paired differences with their confidence
intervals, arm means); the limitations are derived from the evidence, because the
EDD has no free-text limitations field: design scope, claims not supported, failed
trials, flagged distributions, claims below the planned power.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audit.bundle.exports.study import ExportStudy

_DESIGN_SCOPE = {
    "leave-one-out": (
        "Leave-one-out design: each component's effect is measured with every other "
        "component present; interactions between components are not estimated."
    ),
    "add-one": (
        "Add-one design: each component's effect is measured added alone to the base arm; "
        "its effect within the full pipeline is not estimated."
    ),
    "replace-one": (
        "Replace-one design: each component is compared with its declared alternative "
        "only, not with its absence."
    ),
    "full-factorial": (
        "Full-factorial design: main effects and interactions are estimated over the "
        "declared components only."
    ),
}
PLANNED_POWER = 0.8


@dataclass(frozen=True)
class Delta:
    """One comparison of the analysis: candidate - comparator, paired over seeds."""

    target: str
    metric: str
    candidate: str
    comparator: str
    n: int
    value: float
    low: float | None
    high: float | None
    level: float | None
    verdict: str


def deltas(study: ExportStudy) -> list[Delta]:
    found = []
    for c in study.analysis.get("comparisons", []):
        value = (c.get("delta") or {}).get("value")
        if not isinstance(value, int | float):
            continue
        ci = c.get("ci") or {}
        found.append(
            Delta(
                target=str(c.get("target")),
                metric=str(c.get("metric")),
                candidate=str(c.get("candidate_arm")),
                comparator=str(c.get("comparator_arm")),
                n=int(c.get("n") or 0),
                value=float(value),
                low=_number(ci.get("low")),
                high=_number(ci.get("high")),
                level=_number(ci.get("level")),
                verdict=str(c.get("verdict")),
            )
        )
    return found


def candidate_means(study: ExportStudy) -> dict[str, tuple[str, float, int]]:
    """metric -> (arm, mean over its seeds, n) of the candidate arm the study is about."""
    means: dict[str, tuple[str, float, int]] = {}
    for c in study.analysis.get("comparisons", []):
        mean = _number(c.get("mean_candidate"))
        metric = str(c.get("metric"))
        if mean is not None and metric not in means:
            means[metric] = (str(c.get("candidate_arm")), mean, int(c.get("n") or 0))
    return means


def limitations(study: ExportStudy) -> list[str]:
    notes = []
    design = str(study.analysis.get("design") or "")
    if design in _DESIGN_SCOPE:
        notes.append(_DESIGN_SCOPE[design])
    notes.append(
        "Results hold for the data pinned by the DVC hashes and the environment recorded "
        "in this bundle; other data, populations or time periods are not covered."
    )
    decision = study.analysis.get("decision") or {}
    notes.extend(
        f"Claim not supported: {reason.removeprefix('NOT supported: ')}"
        for reason in decision.get("reasons", [])
        if isinstance(reason, str) and reason.startswith("NOT supported")
    )
    failed = study.analysis.get("failed_trials")
    if isinstance(failed, list) and failed:
        notes.append(f"{len(failed)} trial(s) failed and are missing from the comparisons.")
    for c in study.analysis.get("comparisons", []):
        notes.extend(_comparison_notes(c))
    return notes


def _comparison_notes(c: Mapping[str, Any]) -> list[str]:
    name = f"{c.get('target')} ({c.get('metric')})"
    notes = []
    warning = (c.get("diagnostics") or {}).get("warning")
    if warning:
        notes.append(f"{name}: {warning}")
    hint = c.get("sample_size_hint") or {}
    power = _number(hint.get("power_at_n"))
    if c.get("claim") and power is not None and power < PLANNED_POWER:
        notes.append(
            f"{name}: power {power:.2f} at n={hint.get('n')} is below {PLANNED_POWER}; "
            f"about {hint.get('seeds_needed')} seeds would be needed."
        )
    return notes


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
