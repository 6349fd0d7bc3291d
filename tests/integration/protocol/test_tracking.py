"""Trials are logged to a real MLflow server (append-only store) as they finish."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_run_logs_each_trial_and_records_run_ids(study, run_cli, mlflow_server, tmp_path):
    from audit.tracking.client import connect

    out = tmp_path / "out"
    args = study.run_args(out, "--no-cache", "--tracking-uri", mlflow_server.uri)
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    run_ids = [t["mlflow_run_id"] for t in results["trials"]]
    assert all(run_ids)
    assert len(set(run_ids)) == len(run_ids)
    tracking = results["tracking"]
    assert tracking["uri"] == mlflow_server.uri
    client = connect(mlflow_server.uri)
    run = client.get_run(run_ids[1])
    assert run.data.metrics["score"] == results["trials"][1]["metrics"]["score"]
    assert client.get_run(tracking["parent_run_id"]).info.status == "FINISHED"
    journal = (out / "journal.jsonl").read_text()
    assert journal.count('"event":"tracked"') == len(run_ids)
