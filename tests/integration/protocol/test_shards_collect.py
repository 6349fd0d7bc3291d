"""CI shards end to end: plan --shards, run --shard I/N per job, collect merges and checks."""

from __future__ import annotations

import json
import shutil

import pytest
from jsonschema import Draft202012Validator
from protocol_study import edd_document

from audit._resources import load_schema


def test_shards_run_separately_and_collect_into_one_results(study, run_cli, tmp_path):
    matrix = run_cli("ablate", "plan", study.edd, "--shards", "2")
    assert matrix.exit_code == 0
    rows = json.loads(matrix.stdout)
    assert [r["MLAUDIT_SHARD"] for r in rows] == ["1/2", "2/2"]
    outs = []
    for row in rows:
        out = tmp_path / f"out-{row['MLAUDIT_SHARD'].replace('/', '-')}"
        result = run_cli(*study.run_args(out, "--shard", row["MLAUDIT_SHARD"], "--no-cache"))
        assert result.exit_code == 0, result.stderr
        shard = json.loads((out / "results.json").read_text())
        assert len(shard["trials"]) == int(row["MLAUDIT_SHARD_TRIALS"])
        assert shard["plan"]["shard"] == row["MLAUDIT_SHARD"]
        outs.append(out)
    merged_path = tmp_path / "results.json"
    result = run_cli("ablate", "collect", *outs, "-o", merged_path)
    assert result.exit_code == 0, result.stderr
    merged = json.loads(merged_path.read_text())
    Draft202012Validator(load_schema("results")).validate(merged)
    assert merged["plan"]["shard"] is None
    assert len(merged["trials"]) == 12
    assert len({t["trial_id"] for t in merged["trials"]}) == 12
    # The determinism check ran in exactly the shard holding baseline/0.
    assert merged["reproducibility"]["passed"] is True
    assert merged["budget"]["trials_run"] == 13

    missing = run_cli("ablate", "collect", outs[0], "-o", tmp_path / "x.json")
    assert missing.exit_code == 1
    assert "is in no shard" in missing.stderr
    twice = run_cli("ablate", "collect", outs[0], outs[0], outs[1], "-o", tmp_path / "x.json")
    assert twice.exit_code == 1
    assert "appears in two shards" in twice.stderr


def test_collect_refuses_shards_with_different_provenance(study, run_cli, tmp_path):
    first, second = tmp_path / "out1", tmp_path / "out2"
    assert run_cli(*study.run_args(first, "--shard", "1/2", "--no-cache")).exit_code == 0
    (study.root / "README").write_text("a new commit between shard jobs\n")
    study.commit("change the code")
    assert run_cli(*study.run_args(second, "--shard", "2/2", "--no-cache")).exit_code == 0
    result = run_cli("ablate", "collect", first, second, "-o", tmp_path / "r.json")
    assert result.exit_code == 1
    assert "provenance.fingerprint differs" in result.stderr


def test_collect_refuses_a_tampered_results_file(study, run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache")).exit_code == 0
    copy = tmp_path / "copy.json"
    shutil.copy(out / "results.json", copy)
    document = json.loads(copy.read_text())
    document["trials"][0]["status"] = "great"
    copy.write_text(json.dumps(document))
    result = run_cli("ablate", "collect", copy, "-o", tmp_path / "r.json")
    assert result.exit_code == 1
    assert "/trials/0/status" in result.stderr


def test_plan_cli_reports_confound_naming_arm_and_key(new_study, run_cli):
    document = edd_document()
    document["protocol"]["baseline"]["model"]["width"] = "${features.a}"
    study = new_study(document, sign=False)
    result = run_cli("ablate", "plan", study.edd)
    assert result.exit_code == 1
    assert "arm no-a: key 'model.width' differs from the baseline" in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_cli_text_and_json(study, run_cli):
    text = run_cli("ablate", "plan", study.edd)
    assert text.exit_code == 0
    assert "4 arms x 3 seeds = 12 + 1 determinism re-run (baseline/0)" in text.stdout
    data = json.loads(run_cli("ablate", "plan", study.edd, "--json").stdout)
    assert data["planned_trial_count"] == 13
    assert data["trials"][:2] == ["baseline/0", "no-a/0"]


@pytest.mark.parametrize("args", [["--help"], ["plan", "tests/corpus/edd/valid/minimal.yaml"]])
def test_help_and_plan_do_not_import_heavy_libraries(args):
    import subprocess
    import sys

    code = (
        "import sys; from audit.cli.main import main; "
        f"main(['ablate', *{args!r}]); "
        "heavy = [m for m in ('mlflow', 'dvc', 'numpy', 'scipy', 'pandas') if m in sys.modules]; "
        "print('HEAVY=' + ','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY="
