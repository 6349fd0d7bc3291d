"""`mlaudit report render` end to end: files in, report files out, clear errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from report_factory import CHECKPOINT, build, gate_document


@pytest.fixture
def study(tmp_path):
    analysis, results = build()
    paths = {}
    for name, document in (
        ("analysis", analysis),
        ("results", results),
        ("checkpoint", CHECKPOINT),
        ("gate", gate_document(analysis)),
    ):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(document))
    return paths


@pytest.mark.parametrize("fmt", ["md", "html", "json", "junit"])
def test_render_every_format(run_cli, study, tmp_path, fmt):
    out = tmp_path / f"report.{fmt}"
    result = run_cli(
        "report",
        "render",
        study["analysis"],
        "--results",
        study["results"],
        "--checkpoint",
        study["checkpoint"],
        "--gate",
        study["gate"],
        "--format",
        fmt,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    text = out.read_text()
    if fmt == "md":
        assert text.startswith("## ✅ mlaudit: PASSED")
    elif fmt == "html":
        assert text.startswith("<!DOCTYPE html>")
    elif fmt == "json":
        assert json.loads(text)["decision"]["passed"] is True
    else:
        assert ET.fromstring(text.encode()).tag == "testsuites"


def test_render_to_stdout_with_budget_and_key(run_cli, study):
    result = run_cli(
        "report",
        "render",
        study["analysis"],
        "--budget",
        "github-comment",
        "--key",
        "nightly",
        "-o",
        "-",
    )
    assert result.exit_code == 0
    assert result.stdout.rstrip().endswith("<!-- mlaudit:report key=nightly -->")


def test_json_flag_reports_what_was_written(run_cli, study, tmp_path):
    result = run_cli("report", "render", study["analysis"], "-o", tmp_path / "r.md", "--json")
    data = json.loads(result.stdout)
    assert data["format"] == "md"
    assert data["decision"] == "not-gated"
    gated = run_cli(
        "report", "render", study["analysis"], "--gate", study["gate"], "-o", tmp_path / "g.md"
    )
    assert gated.exit_code == 0, gated.stderr
    assert "decision: passed" in gated.stdout


def test_a_gate_for_other_results_is_refused(run_cli, study, tmp_path):
    gate = json.loads(study["gate"].read_text())
    gate["results_sha256"] = "0" * 64
    other = tmp_path / "other-gate.json"
    other.write_text(json.dumps(gate))
    result = run_cli("report", "render", study["analysis"], "--gate", other, "-o", "-")
    assert result.exit_code == 1
    assert "other-gate.json:/results_sha256" in result.stderr
    assert result.stdout == ""


def test_invalid_analysis_is_a_one_line_error(run_cli, tmp_path):
    bad = tmp_path / "analysis.json"
    bad.write_text(json.dumps({"schema": "mlaudit/analysis/v1"}))
    result = run_cli("report", "render", bad, "-o", tmp_path / "r.md")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"mlaudit: error: {bad}:")
    assert "Traceback" not in result.stderr


def test_not_json_and_missing_files(run_cli, tmp_path, study):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert "not valid JSON" in run_cli("report", "render", broken, "-o", "-").stderr
    missing = run_cli("report", "render", tmp_path / "nope.json", "-o", "-")
    assert missing.exit_code == 2  # the README's exit-code table: a missing input is usage
    assert "no such file" in missing.stderr


def test_bad_checkpoint_points_at_the_field(run_cli, study, tmp_path):
    bad = tmp_path / "cp.json"
    bad.write_text(json.dumps({"origin": "x", "size": -1, "root": "zz"}))
    result = run_cli("report", "render", study["analysis"], "--checkpoint", bad, "-o", "-")
    assert result.exit_code == 1
    assert f"{bad}:/size" in result.stderr


def test_mismatched_results_are_refused(run_cli, study, tmp_path):
    results = json.loads(study["results"].read_text())
    results["edd"]["digest"] = "0" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(results))
    result = run_cli("report", "render", study["analysis"], "--results", other, "-o", "-")
    assert result.exit_code == 1
    assert "different EDDs" in result.stderr


@pytest.mark.parametrize(
    ("name", "fmt", "start"),
    [
        ("report.html", "html", "<!DOCTYPE html>"),
        ("summary.JSON", "json", "{"),
        ("junit.xml", "junit", "<?xml"),
        ("report.md", "md", "## "),
        ("report.txt", "md", "## "),
    ],
)
def test_the_format_follows_the_output_name(run_cli, study, tmp_path, name, fmt, start):
    out = tmp_path / name
    result = run_cli("report", "render", study["analysis"], "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["format"] == fmt
    assert out.read_text().startswith(start)


def test_a_format_the_output_name_contradicts_is_a_usage_error(run_cli, study, tmp_path):
    out = tmp_path / "report.html"
    result = run_cli("report", "render", study["analysis"], "--format", "md", "-o", out)
    assert result.exit_code == 2
    assert "--format md, but the name" in result.stderr
    assert "asks for html" in result.stderr
    assert not out.exists()


def test_budget_with_other_format_is_a_usage_error(run_cli, study):
    result = run_cli(
        "report",
        "render",
        study["analysis"],
        "--format",
        "html",
        "--budget",
        "github-comment",
        "-o",
        "-",
    )
    assert result.exit_code == 2


def test_render_does_not_import_matplotlib_for_markdown(study):
    import subprocess
    import sys

    code = (
        "import sys; from audit.cli.main import main; "
        f"main(['report', 'render', {str(study['analysis'])!r}, '-o', '-']); "
        "heavy = [m for m in ('matplotlib', 'numpy', 'mlflow') if m in sys.modules]; "
        "print('HEAVY=' + ','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in proc.stdout
