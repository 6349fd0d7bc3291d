"""`mlaudit ablate analyze` end to end: files in, files out, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"


def test_analyze_writes_analysis_and_exits_0_on_a_negative_decision(run_cli, tmp_path):
    out = tmp_path / "out" / "analysis.json"
    result = run_cli("ablate", "analyze", STUDY / "results.json", "-o", out)
    assert result.exit_code == 0, result.stderr
    analysis = json.loads(out.read_text())
    assert analysis["decision"]["passed"] is False
    assert (
        analysis["results_sha256"]
        == hashlib.sha256((STUDY / "results.json").read_bytes()).hexdigest()
    )
    assert analysis["results_sha256_of"] == "results file bytes"
    assert analysis["edd"]["id"] == "fraud-graph-features"
    assert "decision: failed: 4 of 6 claims supported" in result.stdout
    assert "improves  graph_features (pr_auc" in result.stdout


def test_json_output_and_seed_options(run_cli, tmp_path):
    out = tmp_path / "analysis.json"
    result = run_cli(
        "ablate",
        "analyze",
        STUDY / "passing" / "results.json",
        "-o",
        out,
        "--json",
        "--seed",
        "7",
        "--resamples",
        "199",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["passed"] is True
    assert summary["output"] == str(out)
    analysis = json.loads(out.read_text())
    assert analysis["method"]["seed"] == 7
    assert analysis["method"]["resamples"] == 199


def test_output_to_stdout(run_cli):
    result = run_cli("ablate", "analyze", STUDY / "passing" / "results.json", "-o", "-")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["schema"] == "mlaudit/analysis/v1"


def test_invalid_json_is_one_line_exit_1(run_cli, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"schema": "mlaudit/results/v1", "schema": 1}')
    result = run_cli("ablate", "analyze", bad, "-o", tmp_path / "a.json")
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first == f"mlaudit: error: {bad}:/schema: duplicate key 'schema'"
    bad.write_text("[1, 2")
    result = run_cli("ablate", "analyze", bad, "-o", tmp_path / "a.json")
    assert result.exit_code == 1
    assert "not valid JSON" in result.stderr
    assert not (tmp_path / "a.json").exists()


def test_schema_violation_names_the_pointer(run_cli, tmp_path):
    results = json.loads((STUDY / "results.json").read_text())
    results["trials"][0]["seed"] = "zero"
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(results))
    result = run_cli("ablate", "analyze", bad, "-o", tmp_path / "a.json")
    assert result.exit_code == 1
    assert f"{bad}:/trials/0/seed: 'zero' is not of type 'integer'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_is_a_usage_error(run_cli, tmp_path):
    result = run_cli("ablate", "analyze", tmp_path / "nope.json", "-o", tmp_path / "a.json")
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_subprocess_round_trip_and_lazy_imports(tmp_path):
    out = tmp_path / "analysis.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit",
            "ablate",
            "analyze",
            str(STUDY / "results.json"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
    # Loading the ablate group (e.g. for --help) must not pull numpy/scipy in.
    code = (
        "import sys; from audit.cli.main import main; main(['ablate', '--help']); "
        "print('HEAVY=' + ','.join(m for m in ('numpy', 'scipy') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().endswith("HEAVY=")
