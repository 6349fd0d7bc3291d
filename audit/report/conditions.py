"""Each condition of a claim with whether it held, recomputed from a comparison's numbers.

The analysis states its reasons as sentences; a reader needs to see at a glance which
condition failed. These are the conditions audit.stats.decision checks, rebuilt from
the comparison in analysis.json (a test keeps the sentences identical to the
analysis's own reasons). Display only: the gate never reads this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audit.report.numbers import as_number, estimate_value


@dataclass(frozen=True)
class Condition:
    held: bool
    text: str  # the analysis's own wording, e.g. "adjusted p 0.0039 < alpha 0.05"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _condition(ok: bool, label: str, value: float | None, sign: str, bound: str) -> Condition:
    negated = {"<": ">=", ">": "<=", ">=": "<"}[sign]
    return Condition(ok, f"{label} {_fmt(value)} {sign if ok else negated} {bound}")


def _good_direction(c: dict[str, Any]) -> tuple[float | None, float | None]:
    """(delta, CI low) with the sign flipped for a metric to minimise: larger is better."""
    ci = c.get("ci") or {}
    delta, low, high = (
        estimate_value(c.get("delta")),
        as_number(ci.get("low")),
        as_number(ci.get("high")),
    )
    if c.get("goal") == "maximize":
        return delta, low
    return (None if delta is None else -delta), (None if high is None else -high)


def claim_conditions(c: dict[str, Any], alpha: float) -> list[Condition]:
    """Every condition of the comparison's claim; [] when it makes no claim."""
    claim = c.get("claim")
    if not isinstance(claim, dict) or claim.get("claim") not in ("improves", "non-inferior"):
        return []
    delta, low = _good_direction(c)
    p_adj = estimate_value(c.get("p_adjusted"))
    p_ok = p_adj is not None and p_adj < alpha
    level = as_number((c.get("ci") or {}).get("level")) or 0.95
    ci_label = f"{level:.0%} CI lower bound (good direction)"
    if claim["claim"] == "improves":
        min_effect = as_number(claim.get("min_effect")) or 0.0
        return [
            _condition(p_ok, "adjusted p", p_adj, "<", f"alpha {alpha:g}"),
            _condition(low is not None and low > 0, ci_label, low, ">", "0"),
            _condition(
                delta is not None and delta >= min_effect,
                "effect (good direction)",
                delta,
                ">=",
                f"min_effect {min_effect:g}",
            ),
            *_study_conditions(c),
        ]
    margin = as_number(claim.get("margin")) or 0.0
    return [
        _condition(low is not None and low > -margin, ci_label, low, ">", f"-margin {-margin:g}"),
        _condition(p_ok, "adjusted non-inferiority p", p_adj, "<", f"alpha {alpha:g}"),
        *_study_conditions(c),
    ]


def _study_conditions(c: dict[str, Any]) -> list[Condition]:
    """Enough seeds to reach the corrected threshold at all, and no attrition."""
    conditions = []
    floor = c.get("seed_floor")
    if isinstance(floor, dict) and floor.get("reachable") is not None:
        n, needed = floor.get("n"), floor.get("seeds_needed")
        conditions.append(
            Condition(
                bool(floor["reachable"]),
                f"{n} paired seeds can reach the corrected threshold (at least {needed} needed)",
            )
        )
    lost = c.get("attrition") or []
    conditions.append(Condition(not lost, f"{len(lost)} planned trial(s) without a usable value"))
    return conditions


def seed_hint(c: dict[str, Any]) -> str | None:
    """The power analysis's seed count for the claim, e.g. '7 seeds for 80% power at 0.01'."""
    hint = c.get("sample_size_hint")
    if not isinstance(hint, dict) or as_number(hint.get("seeds_needed")) is None:
        return None
    power = as_number(hint.get("power"))
    effect = as_number(hint.get("effect"))
    text = f"{int(hint['seeds_needed'])} seeds"
    if power is not None:
        text += f" for {power:.0%} power"
    if effect is not None:
        text += f" at an effect of {effect:.4g}"
    return text
