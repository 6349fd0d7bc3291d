"""The report's claim-test section: the rule as tested, both family readings, hint, warnings."""

from __future__ import annotations

import json
from pathlib import Path

from audit.report.inputs import ReportInputs
from audit.report.markdown import claim_tests_levels, render_markdown
from audit.stats import analyze_results

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"


def _analysis(variant: str = "passing", change=None) -> dict:
    results = json.loads((STUDY / variant / "results.json").read_text())
    if change is not None:
        change(results)
    return analyze_results(results)


def test_the_section_states_the_test_and_both_readings():
    analysis = _analysis()
    text = render_markdown(ReportInputs(analysis))
    assert "### Claim tests" in text
    assert "intersection-union" in text
    graph = next(line for line in text.splitlines() if line.startswith("| graph&#95;features / pr"))
    cells = [c.strip() for c in graph.split("|")[1:-1]]
    assert cells[1] == "H0: effect (good direction) &#60;= 0.01 vs H1: effect &#62; 0.01"
    assert cells[2].startswith("95% lower: +0.029")
    assert cells[4] == "✅ improves"
    assert cells[5] == "✅ holm p <0.0001"
    # No planning_effect in this EDD: 2 x min_effect, with the power 10 seeds had.
    assert cells[6].startswith("3 at effect 0.02 (now 10 seeds: ")


def test_a_collapsed_seed_is_warned_about_in_the_report():
    def collapse(results: dict) -> None:
        trial = next(t for t in results["trials"] if t["arm"] == "baseline" and t["seed"] == 3)
        trial["metrics"]["pr_auc"] -= 0.2

    levels = claim_tests_levels(_analysis(change=collapse))
    assert (
        "⚠️ graph&#95;features / pr&#95;auc: the differences are strongly skewed to the left"
        in (levels[0])
    )
    # The shortest level keeps the warning: it is what the reader must not miss.
    assert "skewed to the left" in levels[-1]


def test_an_analysis_without_the_v2_rule_renders_no_section():
    analysis = _analysis()
    del analysis["decision_rule"]
    assert claim_tests_levels(analysis) == [""]
