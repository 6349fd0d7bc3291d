"""JUnit XML: one testcase per gate rule, for GitLab's MR test widget and GitHub test reporters.

`render_junit(findings, suite_name)` is the one writer; JUnit shows the gate's rules
(gate.json), the one decision, never a rule list derived from the statistics.
Text goes through ElementTree, which escapes markup, after characters that XML
1.0 cannot carry are replaced.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from audit.documents.gate_result import RuleResult
from audit.findings import Finding
from audit.report.escape import xml_text

EVIDENCE_LIMIT = 20_000


def _evidence_text(evidence: object) -> str:
    if isinstance(evidence, str):
        return evidence
    return json.dumps(evidence, indent=2, sort_keys=True, ensure_ascii=False, default=str)


JunitInput = Finding | RuleResult | Mapping[str, Any]


def _as_mapping(finding: JunitInput) -> Mapping[str, Any]:
    if isinstance(finding, RuleResult):
        finding = finding.finding()
    if isinstance(finding, Finding):
        return {"rule": finding.id, "passed": finding.passed, "evidence": finding.reason}
    return finding


def render_junit(findings: Sequence[JunitInput], suite_name: str) -> str:
    """JUnit XML, a testcase per finding (audit.findings.Finding, a gate RuleResult, or a
    mapping of a gate.json rule: rule, passed, evidence).

    A rule that did not pass is a <failure> whose message is the rule and whose
    text is the evidence; a passing rule keeps its evidence in <system-out>.
    """
    rules = [_as_mapping(f) for f in findings]
    failures = sum(1 for rule in rules if not rule.get("passed"))
    suites = ET.Element(
        "testsuites", name=xml_text(suite_name, 200), tests=str(len(rules)), failures=str(failures)
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=xml_text(suite_name, 200),
        tests=str(len(rules)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for rule in rules:
        name = xml_text(rule.get("rule", "unnamed rule"), 300)
        case = ET.SubElement(suite, "testcase", classname=xml_text(suite_name, 200), name=name)
        evidence = xml_text(_evidence_text(rule.get("evidence", "")), EVIDENCE_LIMIT)
        if rule.get("passed"):
            ET.SubElement(case, "system-out").text = evidence
        else:
            failure = ET.SubElement(case, "failure", message=name, type="mlaudit.rule")
            failure.text = evidence
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )
