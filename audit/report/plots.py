"""Forest plots of the deltas with their CIs, as deterministic inline SVG.

matplotlib is imported here only (it is slow to import). The SVG must be the
same bytes for the same analysis: a fixed hash salt, no date in the metadata,
and text kept as text (labels are untrusted; matplotlib XML-escapes them and
math parsing is off so a '$' in a name cannot break or inject anything).
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Sequence
from typing import Any

from audit.report.escape import clean_text
from audit.report.numbers import as_number, estimate_value

_MAX_ROWS = 40
# matplotlib's hook that writes each Artist subclass's set() signature and docstring.
_SET_DOC_HOOK = "_update_set_signature_and_docstring"


def _points(comparisons: Sequence[dict[str, Any]]) -> list[tuple[str, float, float, float]]:
    points = []
    for c in comparisons[:_MAX_ROWS]:
        delta = estimate_value(c.get("delta"))
        ci = c.get("ci") or {}
        low, high = as_number(ci.get("low")), as_number(ci.get("high"))
        if delta is not None and low is not None and high is not None:
            points.append((clean_text(c.get("target"), 40), delta, low, high))
    return points


def _import_matplotlib() -> None:
    """Import the parts of matplotlib a forest plot needs, skipping set()'s help text.

    While its modules load, matplotlib writes a docstring listing every property
    into the set() method of each of its ~100 Artist classes: about a fifth of
    its import time, and text a report never shows. Drawing does not use it
    (set() behaves the same without it), so the hook is a no-op for this import
    only and is put back after; an already imported matplotlib is left alone.
    """
    if "matplotlib.artist" in sys.modules:
        return
    from matplotlib.artist import Artist

    hook = Artist.__dict__.get(_SET_DOC_HOOK)
    if hook is None:  # a matplotlib without the hook: nothing to skip
        return
    setattr(Artist, _SET_DOC_HOOK, classmethod(lambda cls: None))
    try:
        import matplotlib.backends.backend_svg
        import matplotlib.figure  # noqa: F401
    finally:
        setattr(Artist, _SET_DOC_HOOK, hook)


def forest_svg(metric: str, comparisons: Sequence[dict[str, Any]]) -> str | None:
    """One SVG document (no XML prolog) or None when nothing can be plotted."""
    points = _points(comparisons)
    if not points:
        return None
    _import_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with matplotlib.rc_context(
        {
            "svg.hashsalt": "mlaudit",
            "svg.fonttype": "none",
            "text.parse_math": False,
            "font.size": 9,
        }
    ):
        figure = Figure(figsize=(6.4, 0.45 * len(points) + 1.1))
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        ys = list(range(len(points)))[::-1]
        deltas = [p[1] for p in points]
        errors = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
        axes.errorbar(deltas, ys, xerr=errors, fmt="o", color="#1f5fa8", capsize=3)
        axes.axvline(0.0, color="#888888", linewidth=0.8, linestyle="--")
        _claim_marks(axes, comparisons[:_MAX_ROWS], ys)
        axes.set_yticks(ys, [p[0] for p in points])
        axes.set_xlabel(f"delta of {clean_text(metric, 60)} (candidate - comparator), CI")
        # Fixed margins instead of tight_layout: measuring text is the slowest step.
        longest = max(len(p[0]) for p in points)
        height = 0.45 * len(points) + 1.1
        figure.subplots_adjust(
            left=min(0.5, 0.06 + 0.0105 * longest), right=0.97, bottom=0.75 / height, top=0.97
        )
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    # Drop the XML prolog and DOCTYPE: the SVG is embedded in an HTML page.
    return svg[svg.index("<svg") :] if "<svg" in svg else None


MIN_EFFECT_COLOUR = "#1a7f37"
MARGIN_COLOUR = "#cf222e"


def claim_thresholds(c: dict[str, Any]) -> list[tuple[str, float]]:
    """Where the claim's bar lies in delta units: `min_effect` (improves) or -margin.

    In the metric's own direction: for a metric to minimise an improvement is a
    negative delta, so the thresholds flip sign.
    """
    claim = c.get("claim")
    if not isinstance(claim, dict):
        return []
    sign = -1.0 if c.get("goal") == "minimize" else 1.0
    margin, min_effect = as_number(claim.get("margin")), as_number(claim.get("min_effect"))
    if claim.get("claim") == "non-inferior" and margin is not None:
        return [("margin", -sign * margin)]
    if claim.get("claim") == "improves" and min_effect:
        return [("min_effect", sign * min_effect)]
    return []


def _claim_marks(axes: Any, comparisons: Sequence[dict[str, Any]], ys: Sequence[int]) -> None:
    """A short vertical mark on each row at its claim's threshold, with a legend."""
    rows = [
        c
        for c in comparisons
        if estimate_value(c.get("delta")) is not None
        and as_number((c.get("ci") or {}).get("low")) is not None
        and as_number((c.get("ci") or {}).get("high")) is not None
    ]
    labelled: set[str] = set()
    for c, y in zip(rows, ys, strict=False):
        for kind, x in claim_thresholds(c):
            colour = MIN_EFFECT_COLOUR if kind == "min_effect" else MARGIN_COLOUR
            label = None if kind in labelled else ("−margin" if kind == "margin" else kind)
            labelled.add(kind)
            axes.plot([x, x], [y - 0.35, y + 0.35], color=colour, linewidth=1.6, label=label)
    if labelled:
        axes.legend(loc="best", fontsize=8, frameon=False)


def strip_comments(svg: str) -> str:
    return re.sub(r"<!--.*?-->", "", svg, flags=re.S)
