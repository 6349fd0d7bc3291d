"""Each condition of a claim with whether it held, as the analysis recorded it.

The statistics record every condition a positive verdict needs (`conditions` in
each comparison of analysis.json); the report only marks them ✅/❌, so it never
rebuilds the decision rule from the numbers. Display only: the gate never reads this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.report.numbers import as_number


@dataclass(frozen=True)
class Condition:
    held: bool
    text: str  # the analysis's own wording, e.g. "one-sided 95% lower confidence bound ..."


def claim_conditions(c: dict[str, Any]) -> list[Condition]:
    """Every condition of the comparison's claim; [] when it makes no claim."""
    if not isinstance(c.get("claim"), dict):
        return []
    recorded = c.get("conditions")
    if not isinstance(recorded, list):
        return []
    return [
        Condition(item.get("held") is True, str(item.get("text", "")))
        for item in recorded
        if isinstance(item, dict)
    ]


def seed_hint(c: dict[str, Any]) -> str | None:
    """The power analysis's seed count, e.g. '7 seeds for 80% power at an effect of 0.02'."""
    hint = c.get("sample_size_hint")
    if not isinstance(hint, dict) or as_number(hint.get("seeds_needed")) is None:
        return None
    power = as_number(hint.get("power"))
    effect = as_number(hint.get("planning_effect"))
    text = f"{int(hint['seeds_needed'])} seeds"
    if power is not None:
        text += f" for {power:.0%} power"
    if effect is not None:
        text += f" at an effect of {effect:.4g}"
    return text
