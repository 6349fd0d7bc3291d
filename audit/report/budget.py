"""Size budgets of the places a report is posted, and fitting a report into one.

A report is a list of sections, each with progressively shorter renderings.
Over budget, the least important sections step down first (collapsed, cut to
a few rows, replaced by one line pointing to the full artifact). Every
rendering is a complete Markdown block, so whatever is chosen never leaves a
table, a <details> element or a code fence open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["utf16", "bytes", "chars"]


@dataclass(frozen=True)
class SizeBudget:
    name: str
    limit: int
    unit: Unit
    where: str

    def measure(self, text: str) -> int:
        if self.unit == "bytes":
            return len(text.encode("utf-8"))
        if self.unit == "utf16":
            # GitHub counts UTF-16 code units: astral characters (emoji) count twice.
            return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)
        return len(text)


BUDGETS: dict[str, SizeBudget] = {
    "github-comment": SizeBudget("github-comment", 65_536, "utf16", "GitHub comment"),
    "github-check": SizeBudget("github-check", 65_535, "utf16", "GitHub check run summary"),
    "step-summary": SizeBudget("step-summary", 1_048_576, "bytes", "GitHub step summary"),
    "gitlab-note": SizeBudget("gitlab-note", 1_000_000, "chars", "GitLab note"),
}

# Room kept free for what the publisher adds later (the marker grows by the
# head SHA, run number and timestamp).
RESERVE = 256


@dataclass
class Section:
    """One part of the report; `levels[0]` is the full rendering, the last the shortest."""

    name: str
    levels: list[str]
    priority: int  # lower steps down first
    level: int = 0

    @property
    def text(self) -> str:
        return self.levels[self.level]

    def can_shrink(self) -> bool:
        return self.level < len(self.levels) - 1


@dataclass(frozen=True)
class Fitted:
    text: str
    shortened: list[str]  # names of sections not shown in full


def join(sections: list[Section]) -> str:
    return "\n\n".join(s.text.strip("\n") for s in sections if s.text) + "\n"


def fit(sections: list[Section], budget: SizeBudget | None, notice: str, fallback: str) -> Fitted:
    """Choose a level per section so the joined text fits `budget`.

    `notice` (a complete paragraph) is inserted before the last section when
    anything was shortened; `fallback` is the text used when even the shortest
    renderings do not fit.
    """
    if budget is None:
        return Fitted(join(sections), [])
    limit = budget.limit - RESERVE
    sizes = {id(s): budget.measure(s.text) + 2 for s in sections}
    total = sum(sizes.values()) + 1
    order = sorted(sections, key=lambda s: s.priority)
    notice_section = Section("notice", [notice], priority=10**6)
    notice_size = budget.measure(notice) + 2
    while total + (notice_size if _shortened(sections) else 0) > limit:
        candidate = next((s for s in order if s.can_shrink()), None)
        if candidate is None:
            return Fitted(fallback, [s.name for s in sections])
        candidate.level += 1
        new_size = budget.measure(candidate.text) + 2
        total += new_size - sizes[id(candidate)]
        sizes[id(candidate)] = new_size
    # Shrinking in priority order can overshoot (one huge section forced others
    # down before it reached its shortest form): give the most important
    # sections back their richer renderings while everything still fits.
    for section in reversed(order):
        while section.level > 0:
            richer = budget.measure(section.levels[section.level - 1]) + 2
            if total - sizes[id(section)] + richer + notice_size > limit:
                break
            section.level -= 1
            total += richer - sizes[id(section)]
            sizes[id(section)] = richer
    shortened = _shortened(sections)
    if shortened:
        shown = [*sections[:-1], notice_section, sections[-1]]
        return Fitted(join(shown), shortened)
    return Fitted(join(sections), [])


def _shortened(sections: list[Section]) -> list[str]:
    return [s.name for s in sections if s.level > 0]
