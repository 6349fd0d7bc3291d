"""A forest plot in plain text for the PR comment: one row per comparison, zero marked.

Mermaid's bar chart draws bars up from the axis minimum, so a negative delta looked
like a positive bar, and its lines joined the CI bounds of unrelated components.
Here every row is its own interval on a shared axis that always includes 0:

    scale          │    ├────●────┤   +0.081 [+0.054, +0.108]
    noise-filter ├●┼┤                 -0.0005 [-0.002, +0.001]

Inside a fenced code block, so it renders alike on GitHub, GitLab and in cmark;
labels are reduced to a safe character set (nothing can close the fence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from audit.report.numbers import fmt

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass(frozen=True)
class Interval:
    label: str
    delta: float
    low: float
    high: float


def safe_label(text: object, limit: int = 24) -> str:
    label = _UNSAFE.sub("?", str(text)) or "?"
    return label if len(label) <= limit else label[: limit - 1] + "…"


def forest_text(rows: Sequence[Interval], width: int = 41) -> str:
    """The rows drawn on one axis from min(0, lows) to max(0, highs)."""
    lowest = min(0.0, *(r.low for r in rows))
    highest = max(0.0, *(r.high for r in rows))
    span = (highest - lowest) or 1.0

    def column(value: float) -> int:
        return round((value - lowest) / span * (width - 1))

    zero = column(0.0)
    pad = max(len(r.label) for r in rows)
    lines = []
    for row in rows:
        cells = [" "] * width
        cells[zero] = "│"
        start, end = column(row.low), column(row.high)
        for index in range(start, end + 1):
            cells[index] = "┼" if index == zero else "─"
        cells[start], cells[end] = "├", "┤"
        cells[column(row.delta)] = "●"
        numbers = f"{fmt(row.delta, signed=True)} [{fmt(row.low, signed=True)}, "
        numbers += f"{fmt(row.high, signed=True)}]"
        lines.append(f"{row.label:<{pad}} {''.join(cells)}  {numbers}")
    axis = [" "] * width
    axis[zero] = "0"
    left, right = fmt(lowest, 3, signed=True), fmt(highest, 3, signed=True)
    scale = f"{left} … {right}" if lowest < 0 else f"0 … {right}"
    lines.append(f"{'':<{pad}} {''.join(axis).rstrip()}   (axis {scale})")
    return "\n".join(lines)
