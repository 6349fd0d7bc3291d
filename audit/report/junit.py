"""JUnit XML: one testcase per gate rule, for GitLab's MR test widget and GitHub test reporters.

`render_junit(findings, suite_name)` is the one writer; JUnit shows the gate's rules
(gate.json), the one decision. `rules_from_analysis` is the old statistics-only rule
list kept only until `report render --format junit` reads gate.json; do not add callers.
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
from audit.report.markdown import claim_judged

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


def _comparison_evidence(c: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("target", "metric", "candidate_arm", "comparator_arm", "n", "verdict", "claim")
    evidence = {key: c.get(key) for key in keys}
    evidence.update(
        delta=(c.get("delta") or {}).get("value"),
        ci=[(c.get("ci") or {}).get("low"), (c.get("ci") or {}).get("high")],
        p_adjusted=(c.get("p_adjusted") or c.get("p_value") or {}).get("value"),
        reasons=list(c.get("reasons") or []),
    )
    return evidence


def rules_from_analysis(
    analysis: Mapping[str, Any], results: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Gate rules implied by the signed claims, the attrition and the decision."""
    rules: list[dict[str, Any]] = []
    by_key = {(c.get("target"), c.get("metric")): c for c in analysis["comparisons"]}
    judged_claims = analysis["decision"].get("claims")
    if isinstance(judged_claims, list):
        # The analyzer's own judgement, one per EDD claim in EDD order.
        for claim in judged_claims:
            comparison = by_key.get((claim.get("target"), claim.get("metric")), {})
            rules.append(
                {
                    "rule": f"claim: {claim.get('target')} {claim.get('claim')} "
                    f"on {claim.get('metric')}",
                    "passed": bool(claim.get("supported")),
                    "evidence": _comparison_evidence(comparison) if comparison else claim,
                }
            )
    else:
        for c in analysis["comparisons"]:
            judged = claim_judged(dict(c))
            if judged is None:
                continue
            rules.append(
                {
                    "rule": f"claim: {c.get('target')} {c['claim'].get('claim')} "
                    f"on {c.get('metric')}",
                    "passed": judged,
                    "evidence": _comparison_evidence(c),
                }
            )
    lost = [c.get("target") for c in analysis["comparisons"] if c.get("verdict") == "attrition"]
    rules.append(
        {
            "rule": "attrition: no comparison lost to failed trials",
            "passed": not lost,
            "evidence": {"lost_comparisons": lost, "attrition": list(analysis["attrition"])},
        }
    )
    if results is not None:
        repro = results.get("reproducibility")
        if isinstance(repro, dict):
            rules.append(
                {"rule": "reproducibility", "passed": bool(repro.get("passed")), "evidence": repro}
            )
        budget = results.get("budget") or {}
        rules.append(
            {
                "rule": "budget: within the signed budget",
                "passed": not budget.get("exhausted"),
                "evidence": budget,
            }
        )
    decision = analysis["decision"]
    rules.append(
        {
            "rule": "decision",
            "passed": bool(decision.get("passed")),
            "evidence": {"summary": decision.get("summary"), "reasons": decision.get("reasons")},
        }
    )
    return rules
