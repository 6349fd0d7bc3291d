"""One findings model, rendered the same way for the terminal, JSON, JUnit and Markdown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from audit.cli._findings import finding_lines
from audit.documents import GateResult, RuleResult
from audit.findings import Finding, json_list, markdown_table, passed
from audit.report.junit import render_junit

FINDINGS = [
    Finding("edd-verified", True, "approved", kind="approvals"),
    Finding("tracking-sealed", False, "trial a/1: metrics.score \x1b[31m| <b>", "results.json"),
]


def test_terminal_lines_mark_and_make_control_characters_visible():
    lines = finding_lines(FINDINGS)
    assert lines[0] == "PASS  edd-verified         approved"
    assert lines[1].startswith("FAIL  tracking-sealed      trial a/1: metrics.score ?[31m")
    assert lines[1].endswith("[results.json]")
    assert "\x1b" not in "".join(lines)


def test_json_and_verdict():
    assert json_list(FINDINGS)[1]["pointer"] == "results.json"
    assert not passed(FINDINGS)
    assert passed(FINDINGS[:1])


def test_markdown_escapes_the_untrusted_reason():
    table = markdown_table(FINDINGS)
    row = table.splitlines()[3]
    assert row.startswith("| ❌ fail | tracking-sealed | trial a/1")
    assert "<b>" not in table
    assert row.count("|") == 4  # the reason's pipe cannot open a new cell


def test_junit_from_gate_rules_and_findings_agree():
    rules = (
        RuleResult("budget", "Budget", True, "3/10 trials"),
        RuleResult("claims", "Claims", False, "a on score: claimed improves"),
    )
    gate = GateResult(passed=False, rules=rules)
    from_rules = render_junit(gate.rules, "mlaudit gate s")
    from_findings = render_junit(gate.findings(), "mlaudit gate s")
    from_json = render_junit(gate.to_dict()["rules"], "mlaudit gate s")
    assert from_rules == from_findings == from_json
    suite = ET.fromstring(from_rules.encode()).find("testsuite")
    assert suite.get("failures") == "1"
    assert [c.get("name") for c in suite.iter("testcase")] == ["budget", "claims"]
    assert rules[1].kind == "claims"
    assert rules[0].kind == "budget"
