"""The comment body: cutting a rendered report to a size limit, and putting our marker in.

The body is always Markdown that mlaudit rendered itself (`report render`, or
the privileged publisher's own rendering of an artifact's documents); nothing
here reads a decision out of it. A report rendered without a budget (or a step
summary that is already half full) is cut at the start of a top-level block
that is outside <details>, found with a CommonMark parser (markdown-it-py), so
a cut never lands inside a fence, a table or a collapsed section.
"""

from __future__ import annotations

import re

from audit.errors import UsageError
from audit.report.budget import SizeBudget
from audit.report.marker import Marker, find_marker, replace_marker

_DETAILS_OPEN = re.compile(r"<details[\s>]", re.IGNORECASE)
_DETAILS_CLOSE = re.compile(r"</details\s*>", re.IGNORECASE)


def require_marker(text: str, source: str) -> Marker:
    """The report's hidden marker: proof it is an mlaudit report, and its sticky key."""
    marker = find_marker(text)
    if marker is None:
        raise UsageError(
            f"{source}: not an mlaudit Markdown report (no hidden marker); "
            "render it with `mlaudit report render --format md`"
        )
    return marker


def _line_offsets(text: str) -> list[int]:
    offsets, offset = [], 0
    for line in text.split("\n"):
        offsets.append(offset)
        offset += len(line) + 1
    return offsets


def _safe_cuts(text: str) -> list[int]:
    """Offsets where a top-level block starts, outside any <details> section."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    offsets = _line_offsets(text)
    cuts, depth = [], 0
    for token in tokens:
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        start = token.map[0]
        if depth == 0 and start > 0:
            cuts.append(offsets[start])
        if token.type == "html_block":
            depth += len(_DETAILS_OPEN.findall(token.content))
            depth -= len(_DETAILS_CLOSE.findall(token.content))
            depth = max(depth, 0)
    return cuts


def fit_body(text: str, budget: SizeBudget, pointer: str, reserve: int = 0) -> str:
    """`text` unchanged if it fits; else its longest well-formed prefix, the pointer and marker."""
    limit = budget.limit - reserve
    if budget.measure(text) <= limit:
        return text
    marker = find_marker(text)
    tail = f"\n\n{pointer}\n\n" + (marker.render() + "\n" if marker else "")
    room = limit - budget.measure(tail)
    best = 0
    for cut in _safe_cuts(text):
        if budget.measure(text[:cut]) <= room:
            best = cut
        else:
            break
    head = text[:best].rstrip("\n") if best else text.split("\n", 1)[0][: max(room, 0)]
    return head + tail


def with_marker(text: str, marker: Marker) -> str:
    return replace_marker(text, marker)
