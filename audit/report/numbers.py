"""How numbers are shown in reports: fixed significant digits, signs, n/a for missing."""

from __future__ import annotations

import math
from typing import Any

MISSING = "n/a"


def as_number(value: object) -> float | None:
    """A finite float, or None for null, NaN, infinities, booleans and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def estimate_value(estimate: object) -> float | None:
    """The value of an `{value, method}` estimate (or a bare number)."""
    if isinstance(estimate, dict):
        return as_number(estimate.get("value"))
    return as_number(estimate)


def fmt(value: object, digits: int = 4, signed: bool = False) -> str:
    number = as_number(value)
    if number is None:
        return MISSING
    text = f"{number:+.{digits}g}" if signed else f"{number:.{digits}g}"
    return text.replace("e-0", "e-").replace("e+0", "e+")


def fmt_p(value: object) -> str:
    number = as_number(value)
    if number is None:
        return MISSING
    if number < 1e-4:
        return "<0.0001"
    return f"{number:.3g}"


def fmt_percent(value: object) -> str:
    number = as_number(value)
    return MISSING if number is None else f"{number * 100:+.2f}%"


def fmt_ci(ci: dict[str, Any]) -> str:
    low, high = as_number(ci.get("low")), as_number(ci.get("high"))
    if low is None or high is None:
        return MISSING
    return f"[{fmt(low, signed=True)}, {fmt(high, signed=True)}]"


def fmt_seconds(value: object) -> str:
    number = as_number(value)
    return MISSING if number is None else f"{number:.1f}"
