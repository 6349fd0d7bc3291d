"""The comment body: facts read from a rendered report, cutting to a size limit, defanging.

A rendered report already fits its budget when rendered with `--budget`; a
report rendered without one (or a step summary that is already half full) is
cut here at block boundaries that are outside code fences and <details>, so
the Markdown stays well formed, and a pointer to the full artifact is added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from audit.errors import UsageError
from audit.report.budget import SizeBudget
from audit.report.escape import WORD_JOINER
from audit.report.marker import Marker, find_marker, replace_marker

_HEADLINE = re.compile(r"^## (?:✅|❌) mlaudit: (?P<word>PASSED|FAILED)\b")
_ALLOWED_TAG = re.compile(
    r"<(?:/?(?:details|summary|sub|br)|details markdown=\"1\")>|<!-- mlaudit:[a-z]+ [^<>]{0,200}-->"
)


@dataclass(frozen=True)
class ReportFacts:
    passed: bool
    key: str
    headline: str


def read_facts(text: str, source: str = "report") -> ReportFacts:
    """Decision and sticky key of an mlaudit Markdown report."""
    first = text.split("\n", 1)[0]
    match = _HEADLINE.match(first)
    marker = find_marker(text)
    if not match or marker is None:
        raise UsageError(
            f"{source}: not an mlaudit Markdown report (no decision headline or hidden marker); "
            "render it with `mlaudit report render --format md`"
        )
    return ReportFacts(match.group("word") == "PASSED", marker.key, first[3:200])


def _safe_cuts(text: str) -> list[int]:
    """Offsets of blank-line block boundaries outside code fences and <details>."""
    cuts, depth, fence = [], 0, ""
    offset = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and stripped.strip("`~") == "":
                fence = ""
        elif stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        else:
            depth += stripped.count("<details") - stripped.count("</details>")
            if stripped == "" and depth == 0:
                cuts.append(offset)
        offset += len(line) + 1
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


def defang(text: str) -> str:
    """Make Markdown from an untrusted job inert: no raw HTML, links, images or mentions.

    Used for reports read from a fork's artifact: our own renderer escapes what
    it writes, but a forked workflow can put anything in the file.
    """
    out, fence = [], ""
    for line in text.split("\n"):
        stripped = line.strip()
        if fence or stripped.startswith(("```", "~~~")):
            if fence and stripped.startswith(fence):
                fence = ""
            elif not fence:
                fence = stripped[:3]
            out.append(line)
            continue
        out.append(_defang_line(line))
    return "\n".join(out)


def _defang_line(line: str) -> str:
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    line = _ALLOWED_TAG.sub(keep, line.replace("\x00", "\ufffd"))
    # Only "<" can start raw HTML; entities and ">" (blockquotes) are harmless.
    line = line.replace("<", "&lt;")
    # "]" followed by a joiner ends every link and image form ([x](u), [x][r], ![x](u)).
    line = line.replace("]", "]" + WORD_JOINER)
    line = re.sub(r"(?i)(@|#|!|\bgh-|\bhttps?|\bwww)", lambda m: m.group(0) + WORD_JOINER, line)
    return re.sub("\x00([0-9]+)\x00", lambda m: kept[int(m.group(1))], line)
