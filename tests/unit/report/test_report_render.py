"""Rendering: the decision first, the evidence sections, size budgets, HTML, JSON and JUnit."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from report_factory import CHECKPOINT, build, gate_document

from audit.errors import ValidationFailed
from audit.report import (
    BUDGETS,
    ReportInputs,
    read_gate,
    render,
    render_junit,
)
from audit.report.budget import Section, SizeBudget, fit
from audit.report.escape import md_code, md_text, mermaid_label, xml_text
from audit.report.links import mlflow_run_url, safe_http_base
from audit.report.marker import Marker, find_marker, replace_marker
from audit.report.verdict import gate_from_document as parse_gate

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"


@pytest.fixture
def inputs() -> ReportInputs:
    analysis, results = build()
    return ReportInputs(analysis, results, CHECKPOINT)


def gate_of(inputs: ReportInputs, **failing: str):
    failing = {k.replace("_", "-"): v for k, v in failing.items()}
    return parse_gate(gate_document(inputs.analysis, failing), "gate.json")


def well_formed(text: str) -> None:
    assert text.count("<details") == text.count("</details>")
    fences = [line for line in text.split("\n") if line.startswith("```")]
    assert len(fences) % 2 == 0
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert html.count("<table>") == html.count("</table>")


# -- Markdown ---------------------------------------------------------------------


def test_first_line_is_the_gates_decision_with_a_reason(inputs):
    first = render(inputs, "md", gate=gate_of(inputs)).split("\n")[0]
    assert first.startswith("## ✅ mlaudit: PASSED — toy-study v1: the gate passed all 7 rules.")
    assert first.endswith("2 of 2 signed claims shown; 1 trials lost to attrition.")


def test_failed_claims_say_claims_not_supported():
    analysis, results = build(passed=False)
    analysis["decision"].update(passed=False, summary="failed: 0 of 2 claims supported")
    inputs = ReportInputs(analysis, results)
    first = render(inputs, "md", gate=gate_of(inputs, claims="a: verdict not-shown"))
    assert first.split("\n")[0] == (
        "## ❌ mlaudit: FAILED — toy-study v1: claims not supported. "
        "Statistics: failed: 0 of 2 claims supported"
    )


@pytest.mark.parametrize(
    ("rule", "kind"),
    [
        ("edd-verified", "approvals"),
        ("protocol-as-signed", "protocol"),
        ("budget", "budget"),
        ("no-attrition", "attrition"),
        ("provenance", "provenance"),
        ("reproducible", "reproducibility"),
    ],
)
def test_claims_hold_but_evidence_fails_names_the_kind(inputs, rule, kind):
    gate = parse_gate(gate_document(inputs.analysis, {rule: "broken <b>"}), "gate.json")
    text = render(inputs, "md", gate=gate)
    first = text.split("\n")[0]
    assert first.startswith(f"## ❌ mlaudit: FAILED — toy-study v1: audit evidence failed: {kind}")
    assert f"({rule})" in first
    assert "2 of 2 signed claims shown" in first  # the statistics alone would have passed
    assert f"| ❌ | `{rule}` | {kind} | broken &#60;b&#62; |" in text
    page = render(inputs, "html", gate=gate).replace("<wbr>", "")  # names may wrap at "-"
    assert "<title>mlaudit FAILED: toy-study v1</title>" in page
    assert f"audit evidence failed: {kind} ({rule})" in page
    assert "PASSED" not in page
    summary = json.loads(render(inputs, "json", gate=gate))
    assert summary["decision"]["state"] == "failed"
    assert summary["decision"]["failure_kinds"] == [kind]
    assert summary["statistics"]["claims_supported"] is True


def test_without_a_gate_the_report_is_not_gated(inputs):
    text = render(inputs, "md")
    assert text.startswith("## ⚠️ mlaudit: NOT GATED — toy-study v1: no gate result.")
    assert "PASSED" not in text
    assert "> [!WARNING]\n> Not gated" in text
    page = render(inputs, "html")
    assert "NOT GATED" in page
    assert "PASSED" not in page
    decision = json.loads(render(inputs, "json"))["decision"]
    assert decision == {
        "state": "not-gated",
        "passed": False,
        "summary": "NOT GATED: no gate result was given; this is not a merge decision",
        "failure_kinds": [],
        "rules": [],
    }


def test_a_gate_for_another_study_is_refused(inputs):
    other = gate_document(inputs.analysis)
    other["results_sha256"] = "0" * 64
    with pytest.raises(ValidationFailed) as caught:
        render(inputs, "md", gate=parse_gate(other, "gate.json"))
    assert [p for p, _ in caught.value.problems] == ["/results_sha256"]


@pytest.mark.parametrize(
    ("edit", "pointer"),
    [
        (lambda d: d.update(passed=True, rules=[{**d["rules"][0], "passed": False}]), "/passed"),
        (lambda d: d["rules"][0].update(kind="vibes"), "/rules/0/kind"),
        (lambda d: d.pop("edd"), ""),  # schema: 'edd' is a required property
        (lambda d: d.update(schema="other"), "/schema"),
        (lambda d: d["rules"][1].update(passed="yes"), "/rules/1/passed"),
    ],
)
def test_gate_reader_refuses_bad_shapes(inputs, tmp_path, edit, pointer):
    document = gate_document(inputs.analysis)
    edit(document)
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValidationFailed) as caught:
        read_gate(path)
    assert pointer in [p for p, _ in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"passed": true, "passed": false}', ("/passed", "duplicate key 'passed'")),
        ('{"passed": NaN}', ("/passed", "NaN is not a finite JSON number")),
    ],
)
def test_gate_reader_refuses_duplicate_keys_and_nan(tmp_path, text, problem):
    path = tmp_path / "gate.json"
    path.write_text(text)
    with pytest.raises(ValidationFailed) as caught:
        read_gate(path)
    assert problem in caught.value.problems


def test_sections_and_facts_are_present(inputs):
    text = render(inputs, "md")
    for heading in ("### score (higher is better)", "### Deltas with confidence intervals",
                    "### Secondary metrics", "### Approvals", "### Provenance",
                    "### Reproducibility", "### Attrition and failed trials",
                    "### Budget: used vs signed", "### MLflow", "### Ledger checkpoint",
                    "### Trials"):  # fmt: skip
        assert heading in text
    assert "| a (component) | `baseline` vs `no-a` | 8 | +0.01 | 95% [+0.006, +0.014] |" in text
    assert "0.0078 (raw 0.0039)" in text
    assert "`sha256:" + "e" * 64 + "`" in text  # image digest
    assert "`" + "d" * 64 + "`" in text  # environment lock
    assert "| Trials | 24 | 1000 |" in text
    assert "`" + "ab" * 32 + "`" in text  # checkpoint root
    assert "● mean delta, ├─┤ confidence interval, │ zero\n\n```text\n" in text
    assert text.count("[run](http://127.0.0.1:5000/#/experiments/7/runs/") == 24
    assert find_marker(text) == Marker("toy-study")
    well_formed(text)


def test_analysis_alone_renders(inputs):
    text = render(ReportInputs(inputs.analysis), "md")
    assert "### Approvals" not in text
    assert "### Trials" not in text
    assert "### Attrition and failed trials" in text
    well_formed(text)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///tmp/mlruns",
        "sqlite:///mlflow.db",
        "databricks",
        "./mlruns",
        "javascript:alert(1)",
        "http://user:pw@host/x",
    ],
)
def test_mlflow_links_only_for_clean_http_servers(uri):
    analysis, results = build(tracking_uri=uri)
    text = render(ReportInputs(analysis, results), "md")
    if uri.startswith("http://user"):
        assert "pw" not in text
        assert "user:" not in text
        assert "[run](http://host/x/#/experiments/7/runs/" in text
    else:
        assert "[run](" not in text
        assert "### MLflow" not in text


def test_safe_http_base_and_run_urls():
    assert safe_http_base("https://mlflow.example:8443/base/") == "https://mlflow.example:8443/base"
    assert safe_http_base("https://tok@mlflow.example/?q=1#f") == "https://mlflow.example"
    assert safe_http_base("https://mlflow.example/a b") is None
    assert safe_http_base("https://mlflow.example/../x") is None
    assert safe_http_base("ftp://x") is None
    assert mlflow_run_url("http://h", "1", "0" * 32) == "http://h/#/experiments/1/runs/" + "0" * 32
    assert mlflow_run_url("http://h", "1", "x)](javascript:1") is None
    assert mlflow_run_url("http://h", "../1", "0" * 32) is None


@pytest.mark.parametrize("budget", sorted(BUDGETS))
def test_every_budget_is_respected_and_markdown_stays_whole(budget):
    analysis, results = build(components=[f"component_{i}" for i in range(20)], seeds=30,
                              failed=150, reason="Traceback " + "x" * 250)  # fmt: skip
    inputs = ReportInputs(analysis, results, CHECKPOINT)
    full = render(inputs, "md")
    limit = BUDGETS[budget]
    text = render(inputs, "md", budget=budget)
    assert limit.measure(text) <= limit.limit
    well_formed(text)
    assert text.split("\n")[0] == full.split("\n")[0]
    assert find_marker(text) == Marker("toy-study")
    if limit.measure(full) > limit.limit:
        assert "shortened to fit the size limit" in text
        assert "mlaudit-report" in text
    else:
        assert text == full


def test_tiny_budget_falls_back_to_the_decision_and_pointer(inputs):
    tiny = SizeBudget("tiny", 1200, "chars", "test")
    sections = [Section("a", ["x" * 5000], priority=1)]
    fitted = fit(sections, tiny, "pointer", "fallback")
    assert fitted.text == "fallback"
    from audit.report.markdown import MarkdownOptions, render_markdown
    from audit.report.verdict import Verdict

    text = render_markdown(inputs, MarkdownOptions(budget=tiny), Verdict(gate_of(inputs)))
    assert len(text) <= 1200
    assert text.startswith("## ✅ mlaudit: PASSED")
    assert "This report was cut" in text
    well_formed(text)


def test_details_url_is_named_when_cut():
    analysis, results = build(components=[f"c{i}" for i in range(20)], seeds=80)
    text = render(ReportInputs(analysis, results), "md", budget="github-comment",
                  details_url="https://ci.example/run/1/artifacts")  # fmt: skip
    assert "<https://ci.example/run/1/artifacts>" in text


def test_utf16_budget_counts_astral_characters_twice():
    assert BUDGETS["github-comment"].measure("✅") == 1
    assert BUDGETS["github-comment"].measure("😀") == 2
    assert BUDGETS["step-summary"].measure("é") == 2


# -- escaping, markers ----------------------------------------------------------------


def test_escaping_functions():
    assert md_text("a|b") == "a&#124;b"
    assert "\n" not in md_text("a\nb\r\nc")
    assert md_text("@me") == "&#64;\u2060me"
    assert md_text("x" * 400).endswith("…")
    assert md_code("abc123") == "`abc123`"
    assert md_code("a`b") == "a&#96;b"
    assert md_code("https://x") != "`https://x`"
    assert mermaid_label('a"]b') == "a__b"
    assert xml_text("a\x00b") == "a\ufffdb"


def test_marker_round_trip_and_forgery():
    marker = Marker("toy-study", sha="a" * 40, run=3, timestamp="2026-01-01T00:00:00Z")
    assert find_marker("x\n" + marker.render()) == marker
    assert Marker("x --><img>").render() == "<!-- mlaudit:report key=x-----img -->"
    assert find_marker("<!-- mlaudit:report key=a sha=zz -->") is None
    body = replace_marker("text\n<!-- mlaudit:report key=a -->\n", marker)
    assert find_marker(body) == marker
    assert body.count("mlaudit:report") == 1


# -- HTML, JSON, JUnit --------------------------------------------------------------


def test_html_is_standalone_offline_and_deterministic(inputs):
    page = render(inputs, "html")
    assert page == render(inputs, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page
    assert "<style>" in page
    assert "default-src 'none'" in page
    urls = set(re.findall(r"""(?:href|src)=["']([^"']+)""", page))
    assert all(u.startswith(("http://127.0.0.1:5000", "#")) for u in urls), urls
    assert "<script" not in page
    assert not re.search(r"<dc:date>|CreationDate|\b20[0-9]{2}-[0-9]{2}-[0-9]{2}T", page)
    assert "<table>" in page
    assert "<details" in page


def test_json_summary(inputs):
    summary = json.loads(render(inputs, "json", gate=gate_of(inputs)))
    assert summary["schema"] == "mlaudit/report/v1"
    assert summary["decision"]["passed"] is True
    assert summary["decision"]["state"] == "passed"
    assert summary["decision"]["rules"][0]["rule"] == "edd-verified"
    assert summary["trials"]["by_status"] == {"failed": 1, "succeeded": 23}
    assert summary["comparisons"][0]["ci"] == {"low": 0.006, "high": 0.014, "level": 0.95}
    assert summary["mlflow"]["base"] == "http://127.0.0.1:5000"
    assert summary["checkpoint"]["size"] == 42


def test_render_junit_api():
    xml = render_junit(
        [
            {"rule": "quorum", "passed": True, "evidence": {"signers": 2}},
            {"rule": "claim <a>", "passed": False, "evidence": "p=0.2 \x1b[31m"},
        ],
        "mlaudit gate",
    )
    root = ET.fromstring(xml.encode())
    suite = root.find("testsuite")
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["quorum", "claim <a>"]
    assert cases[0].find("failure") is None
    assert '"signers": 2' in cases[0].find("system-out").text
    assert cases[1].find("failure").get("message") == "claim <a>"


def test_junit_shows_the_gate_rules_or_not_gated(inputs):
    gate = parse_gate(gate_document(inputs.analysis, {"budget": "over budget <b>"}), "gate.json")
    suite = ET.fromstring(render(inputs, "junit", gate=gate).encode()).find("testsuite")
    assert [c.get("name") for c in suite.iter("testcase")] == [r.rule for r in gate.rules]
    assert suite.get("failures") == "1"
    ungated = ET.fromstring(render(inputs, "junit").encode()).find("testsuite")
    assert [c.get("name") for c in ungated.iter("testcase")] == ["not-gated"]
    assert ungated.get("failures") == "1"


# -- the stats engineer's fixtures ------------------------------------------------------


@pytest.mark.parametrize(
    "study", sorted(p.parent.name for p in STUDY.glob("**/analysis.json")) if STUDY.exists() else []
)
@pytest.mark.parametrize("fmt", ["md", "html", "json", "junit"])
def test_study_fixtures_render(study, fmt):
    from audit.report import load_inputs

    folder = STUDY if study == "study" else STUDY / study
    results = folder / "results.json"
    inputs = load_inputs(folder / "analysis.json", results if results.exists() else None)
    passed = inputs.analysis["decision"]["passed"]
    failing = {} if passed else {"claims": "claims not met"}
    gate = parse_gate(gate_document(inputs.analysis, failing), "gate.json")
    text = render(inputs, fmt, gate=gate)
    if fmt == "md":
        assert text.startswith("## ✅" if passed else "## ❌")
        well_formed(text)
    elif fmt == "junit":
        suite = ET.fromstring(text.encode()).find("testsuite")
        assert (suite.get("failures") == "0") == passed
    elif fmt == "json":
        assert json.loads(text)["decision"]["passed"] == passed


def test_rules_use_the_analyzers_claim_judgements():
    analysis, _ = build()
    analysis["decision"]["claims"] = [
        {"target": "a", "metric": "score", "claim": "improves", "verdict": "improves",
         "supported": True},
        {"target": "production", "metric": "score", "claim": "improves",
         "verdict": "not-shown", "supported": False},
    ]  # fmt: skip
    first = render(ReportInputs(analysis), "md").split("\n")[0]
    assert "1 of 2 signed claims shown" in first


def test_fit_gives_back_what_it_did_not_need_to_take():
    from audit.report.budget import RESERVE

    a = Section("a", ["a" * 1000, "a" * 500, "a"], priority=1)
    b = Section("b", ["b" * 300, "b"], priority=2)
    c = Section("c", ["c" * 2000, "c" * 100], priority=3)
    budget = SizeBudget("t", 1000 + RESERVE, "chars", "test")
    fitted = fit([a, b, c], budget, "NOTICE", "FALLBACK")
    assert (a.level, b.level, c.level) == (1, 0, 1)
    assert len(fitted.text) <= 1000
    assert fitted.shortened == ["a", "c"]
    assert "NOTICE" in fitted.text


def test_the_headline_names_the_edd_the_gate_verified(inputs):
    gate = gate_of(inputs)
    inputs.analysis["edd"]["id"] = "someone-elses-study"
    first = render(inputs, "md", gate=gate).split("\n")[0]
    assert first.startswith("## ✅ mlaudit: PASSED — toy-study v1: ")


def test_the_report_knows_every_kind_the_gate_gives():
    from audit._resources import load_schema
    from audit.gate import RULE_KINDS
    from audit.report.verdict import CLAIMS_KIND

    kinds = load_schema("gate")["$defs"]["rule"]["properties"]["kind"]["enum"]
    assert set(kinds) == set(RULE_KINDS.values())
    assert CLAIMS_KIND in kinds


PLOT_IN_FRESH_PROCESS = """
import sys
if sys.argv[1] == "imported-first":
    import matplotlib.figure
from audit.report.plots import forest_svg
rows = [{"target": f"c{i}", "metric": "auc", "delta": 0.01 * i,
         "ci": {"low": -0.01, "high": 0.02 * i}} for i in range(3)]
svg = forest_svg("auc", rows)
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
hook = Artist.__dict__["_update_set_signature_and_docstring"]
assert hook.__func__.__module__ == "matplotlib.artist", hook  # matplotlib's own hook is back
line = Line2D([0], [0])
line.set(color="red", linewidth=3)  # set() works on an Artist imported without its help text
assert (line.get_color(), line.get_linewidth()) == ("red", 3)
sys.stdout.write(svg)
"""


def test_forest_plot_is_the_same_bytes_however_matplotlib_was_imported():
    """forest_svg skips matplotlib's set() help text while importing it; nothing else changes."""
    import subprocess
    import sys

    def plot(mode: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", PLOT_IN_FRESH_PROCESS, mode],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    skipped, normal = plot("skip-help"), plot("imported-first")
    assert skipped.startswith("<svg")
    assert skipped == normal
