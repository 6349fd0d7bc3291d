"""The determinism re-run with real metrics: timings are not evidence and must not fail it."""

from __future__ import annotations

import json
from pathlib import Path

from protocol_study import edd_document


def _check(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["reproducibility"]


def _timed_document(**reproducibility: object) -> dict:
    document = edd_document(references=[], seeds=[0])
    document["protocol"]["baseline"]["timing"] = True
    document["reproducibility"].update(reproducibility)
    return document


def test_undeclared_timing_metrics_are_not_compared(new_study, run_cli, tmp_path):
    study = new_study(_timed_document())
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache")).exit_code == 0
    check = _check(out)
    assert check["passed"] is True, check["reason"]
    assert set(check["metrics"]) == {"score", "nested.loss"}


def test_a_declared_timing_metric_fails_unless_excluded(new_study, run_cli, tmp_path):
    document = _timed_document()
    document["metrics"]["secondary"].append({"name": "train_seconds", "goal": "minimize"})
    study = new_study(document)
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache")).exit_code == 0
    check = _check(out)
    assert check["passed"] is False
    assert "metric 'train_seconds' differs" in check["reason"]

    document["reproducibility"]["exclude"] = ["train_seconds"]
    document["reproducibility"]["metric_tolerance"] = {"nested.loss": {"abs": 1e-9}}
    study.write_edd(document)
    out = tmp_path / "out2"
    assert run_cli(*study.run_args(out, "--no-cache")).exit_code == 0
    check = _check(out)
    assert check["passed"] is True, check["reason"]
    assert check["excluded"] == ["train_seconds"]
    assert check["metrics"]["nested.loss"]["tolerance"] == {"abs": 1e-9, "rel": 0.0}


def test_the_rerun_runs_beside_the_plan_not_after_it(new_study, run_cli, tmp_path, markers):
    # A re-run that waited for every trial would leave a worker idle for its length.
    document = edd_document(references=[], seeds=[0, 1, 2, 3])
    document["protocol"]["baseline"]["sleep"] = 0.3
    study = new_study(document)
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache", "--workers", "2")).exit_code == 0
    assert _check(out)["passed"] is True
    [rerun_start] = markers.glob("*~rerun.start")
    plan_done = [p for p in markers.glob("*.done") if not p.name.endswith("~rerun.done")]
    assert len(plan_done) == 12
    assert rerun_start.stat().st_mtime_ns < max(p.stat().st_mtime_ns for p in plan_done)
