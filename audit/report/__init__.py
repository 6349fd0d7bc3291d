"""Reports from analysis.json (+ results, checkpoint, gate.json): Markdown, HTML, JSON, JUnit.

Public API: `load_inputs`, `read_gate`, `render`, `render_markdown`, `render_html`,
`render_json`, `render_junit`, `BUDGETS`. The renderers
take plain values and return text; they never read the environment or print.
The decision a report shows is the gate's (`GateResult`); without one a report
is "not gated" and never looks like a pass.
"""

from __future__ import annotations

from typing import Literal

from audit.documents.gate_result import GateResult
from audit.report.budget import BUDGETS, SizeBudget
from audit.report.inputs import ReportInputs, load_inputs
from audit.report.junit import render_junit
from audit.report.markdown import MarkdownOptions, render_markdown
from audit.report.summary import build_summary, render_json
from audit.report.verdict import Verdict, check_gate_matches, read_gate

Format = Literal["md", "html", "json", "junit"]
FORMATS: tuple[str, ...] = ("md", "html", "json", "junit")


def render_html(inputs: ReportInputs, verdict: Verdict | None = None) -> str:
    from audit.report.html import render_html as _render_html

    return _render_html(inputs, verdict)


def _junit_rules(verdict: Verdict) -> list[dict[str, object]]:
    """JUnit shows the gate's rules, the one decision; without a gate, one failing case."""
    if verdict.gate is None:
        return [{"rule": "not-gated", "passed": False, "evidence": verdict.summary()}]
    return [
        {"rule": r.rule, "passed": r.passed, "evidence": r.evidence} for r in verdict.gate.rules
    ]


def render(
    inputs: ReportInputs,
    fmt: str = "md",
    *,
    gate: GateResult | None = None,
    budget: str | None = None,
    key: str | None = None,
    details_url: str | None = None,
    suite_name: str | None = None,
) -> str:
    """The report in `fmt`, showing `gate` as the decision (None: "not gated").

    `budget` (a BUDGETS name) applies to Markdown only.
    """
    if gate is not None:
        check_gate_matches(gate, inputs.analysis, inputs.sources.get("gate", "gate.json"))
    verdict = Verdict(gate)
    if fmt == "md":
        options = MarkdownOptions(
            budget=BUDGETS[budget] if budget else None, key=key, details_url=details_url
        )
        return render_markdown(inputs, options, verdict)
    if fmt == "html":
        return render_html(inputs, verdict)
    if fmt == "json":
        return render_json(inputs, verdict)
    if fmt == "junit":
        name = suite_name or f"mlaudit {inputs.analysis['edd'].get('id')}"
        return render_junit(_junit_rules(verdict), name)
    raise ValueError(f"unknown report format {fmt!r}")


__all__ = [
    "BUDGETS",
    "FORMATS",
    "Format",
    "GateResult",
    "MarkdownOptions",
    "ReportInputs",
    "SizeBudget",
    "Verdict",
    "build_summary",
    "load_inputs",
    "read_gate",
    "render",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
]
