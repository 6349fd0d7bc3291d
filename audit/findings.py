"""One findings model for every check mlaudit runs, and the renderers they share.

`edd verify`, `track verify`, `gate` and `bundle verify` each turn their result
into `Finding`s (id, passed, reason, evidence pointer; the gate adds its rule kind),
and the terminal, `--json`, JUnit and Markdown outputs are rendered from those by
the functions here (the terminal one is audit.cli._findings, JUnit is
audit.report.junit.render_junit), never by a command's own formatting of the facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One thing checked: its id, whether it passed, why, and where the evidence is.

    `pointer` says where to look: `file` or `file:/json/pointer` (untrusted text:
    renderers escape it). `kind` is the gate's rule kind (approvals, ledger, ...),
    empty for checks that have none.
    """

    id: str
    passed: bool
    reason: str
    pointer: str = ""
    kind: str = ""
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "passed": self.passed,
            "reason": self.reason,
            "pointer": self.pointer,
            "kind": self.kind,
            "title": self.title,
        }


def passed(findings: Iterable[Finding]) -> bool:
    return all(f.passed for f in findings)


def json_list(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in findings]


def markdown_table(findings: Sequence[Finding]) -> str:
    """A Markdown table of the findings; every cell escaped (the text is untrusted)."""
    from audit.report.escape import md_text

    rows = ["| result | check | reason |", "|---|---|---|"]
    for finding in findings:
        mark = "✅ pass" if finding.passed else "❌ fail"
        rows.append(f"| {mark} | {md_text(finding.id)} | {md_text(finding.reason)} |")
    return "\n".join(rows) + "\n"
