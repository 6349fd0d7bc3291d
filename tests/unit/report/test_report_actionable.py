"""Reports a team can act on: conditions marked, arms summarised, a chart that reads right."""

from __future__ import annotations

import copy
import json
import re
import statistics
from pathlib import Path

import pytest

from audit.report import ReportInputs, render
from audit.report.conditions import claim_conditions

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"
FIXTURES = sorted(p for p in STUDY.iterdir() if (p / "analysis.json").is_file())


def _inputs(folder: Path) -> ReportInputs:
    analysis = json.loads((folder / "analysis.json").read_text())
    results = json.loads((folder / "results.json").read_text())
    return ReportInputs(analysis, results)


@pytest.mark.parametrize("folder", FIXTURES, ids=lambda p: p.name)
def test_conditions_say_what_the_analysis_said_and_which_held(folder: Path):
    analysis = _inputs(folder).analysis
    judged = [c for c in analysis["comparisons"] if c.get("claim")]
    assert judged
    for c in judged:
        conditions = claim_conditions(c)
        checks = 2  # the one-sided test and its bound; then the study's blockers
        assert [k.text for k in conditions[:checks]] == c["reasons"][:checks]
        evidence_positive = all(k.held for k in conditions[:checks])
        assert evidence_positive == (c["evidence_verdict"] in ("improves", "non-inferior"))
        if c["verdict"] in ("improves", "non-inferior"):
            assert all(k.held for k in conditions)
        else:
            assert not all(k.held for k in conditions)


def test_a_failed_claim_marks_the_failed_condition():
    text = render(_inputs(STUDY), "md")
    assert "❌ " in text
    assert re.search(r"❌ 1 planned trial\(s\) without a usable value", text)
    assert re.search(r"❌ one-sided 95%\S* lower confidence bound \S+ &#60;= min&#95;effect", text)
    assert "seeds for 80% power" in text


def test_per_arm_mean_and_sd_of_the_primary_metric():
    inputs = _inputs(STUDY / "passing")
    primary = next(m["name"] for m in inputs.analysis["metrics"] if m.get("primary"))
    text = render(inputs, "md")
    assert "per arm (mean ± SD over seeds)" in text
    values = [t["metrics"][primary] for t in inputs.results["trials"] if t["arm"] == "baseline"]
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    assert f"| `baseline` | {len(values)} | {mean:.4g} ± {sd:.4g} | 0 |" in text


def _chart(text: str) -> list[str]:
    blocks = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    assert blocks, "no text chart in the report"
    return blocks[0].rstrip("\n").split("\n")


def test_chart_draws_a_negative_delta_left_of_zero():
    inputs = _inputs(STUDY / "passing")
    analysis = copy.deepcopy(inputs.analysis)
    for c in analysis["comparisons"]:
        if c["target"] == "calibration" and c.get("primary"):
            c["delta"]["value"], c["ci"]["low"], c["ci"]["high"] = -0.02, -0.03, -0.01
    *rows, axis = _chart(render(ReportInputs(analysis, inputs.results), "md"))
    zero = axis.index("0")
    by_label = {row.split()[0]: row for row in rows}
    assert by_label["calibration"].index("●") < zero  # left of zero: worse
    assert by_label["graph_features"].index("●") > zero
    for row in rows:  # each component on its own row: nothing joins them
        assert row[zero] in "│┼├┤●"


def test_the_determinism_rerun_is_counted_and_labelled():
    inputs = _inputs(STUDY / "passing")
    results = copy.deepcopy(inputs.results)
    results["reproducibility"]["attempts"] = 1
    results["budget"]["trials_run"] = len(results["trials"]) + 1
    text = render(ReportInputs(inputs.analysis, results), "md")
    assert f"| Trials (incl. 1 determinism re-run) | {len(results['trials']) + 1} |" in text


def test_html_plot_marks_each_claims_threshold():
    from audit.report.plots import MARGIN_COLOUR, MIN_EFFECT_COLOUR, claim_thresholds, forest_svg

    analysis = _inputs(STUDY / "passing").analysis
    rows = [c for c in analysis["comparisons"] if c.get("primary")]
    by_target = {c["target"]: c for c in rows}
    assert claim_thresholds(by_target["graph_features"]) == [("min_effect", 0.01)]
    assert claim_thresholds(by_target["calibration"])[0][0] == "margin"
    assert claim_thresholds(by_target["calibration"])[0][1] < 0  # maximize: -margin
    svg = forest_svg("pr_auc", rows)
    assert svg is not None
    assert MIN_EFFECT_COLOUR in svg
    assert MARGIN_COLOUR in svg
    assert "min_effect" in svg
    assert "−margin" in svg
    minimize = dict(by_target["calibration"], goal="minimize")
    assert claim_thresholds(minimize)[0][1] > 0  # lower is better: +margin is the bar
