"""`ablate run` pre-flight, early stop and its own exit code when planned trials fail."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from protocol_study import edd_document


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_a_command_that_cannot_resolve_runs_no_trial(new_study, run_cli, tmp_path):
    document = edd_document(command=["python-that-is-not-installed", "train.py", "{overrides}"])
    study = new_study(document)
    out = tmp_path / "out"
    result = run_cli(*study.run_args(out, "--no-cache"))
    assert result.exit_code == 1
    assert "'python-that-is-not-installed' was not found on PATH" in result.stderr
    assert "/protocol/command" in result.stderr
    assert not (out / "trials").exists()


def test_the_interpreter_is_named_before_the_first_trial(study, run_cli, tmp_path):
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert "pre-flight: trials will run" in first
    assert "train.py" in first


def test_uniform_failure_stops_the_study_and_exits_4(new_study, run_cli, tmp_path):
    document = edd_document(seeds=[0, 1, 2, 3])
    document["protocol"]["baseline"]["behaviour"] = "crash"  # every arm inherits it
    study = new_study(document)
    out = tmp_path / "out"
    result = run_cli(*study.run_args(out, "--no-cache", "--workers", "1"))
    assert result.exit_code == 4, result.stderr
    assert "planned trial(s) did not succeed" in result.stderr
    assert "boom: the model exploded" in result.stderr
    trials = _results(out)["trials"]
    statuses = Counter(t["status"] for t in trials)
    # The first trial of each of the 4 arms, and at most the one the worker had started.
    assert statuses["failed"] in (4, 5)
    assert statuses["not_run"] == 16 - statuses["failed"]
    stopped = [t["reason"] for t in trials if t["status"] == "not_run"]
    assert all(
        r.startswith("stopped early: the first trial of each of the 4 arms") for r in stopped
    )
    # The progress line says when a trial already running will still report after it.
    (note,) = [line for line in result.stderr.splitlines() if "stopped early" in line]
    assert note.endswith("the 1 trial(s) already running finish first") == (statuses["failed"] == 5)


def test_attrition_ok_lets_ci_carry_on(new_study, run_cli, tmp_path, monkeypatch):
    document = edd_document(references=[], seeds=[0])
    document["protocol"]["components"][1]["ablate"] = ["features.b=false", "behaviour=crash"]
    document["protocol"]["baseline"]["behaviour"] = "ok"
    study = new_study(document)
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache", "--attrition-ok"))
    assert result.exit_code == 0, result.stderr
    assert "1 planned trial(s) did not succeed" in result.stderr
    monkeypatch.setenv("MLAUDIT_ATTRITION_OK", "1")
    assert run_cli(*study.run_args(tmp_path / "out2", "--no-cache")).exit_code == 0
