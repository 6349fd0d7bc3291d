"""`track log` against a real `mlflow server` with the append-only store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mlflow.entities import Metric, ViewType
from tracking_study import make_results

from audit.tracking import record as run_record
from audit.tracking.client import ProtocolLogger, connect, log_results, search_all
from audit.tracking.ledger import fetch_ledger, resolve_experiment
from audit.tracking.ledger_verify import verify_ledger
from audit.tracking.runspec import TRIAL_KEY_TAG, to_millis, trial_key


def _runs(uri: str, experiment: str):
    client = connect(uri)
    experiment_id = resolve_experiment(client, experiment)
    return client, experiment_id, list(search_all(client, experiment_id, ""))


def test_log_results_builds_parent_and_sealed_children(mlflow_server, tmp_path):
    results = make_results(history_steps=4)
    trial_dir = tmp_path / "trials" / "baseline" / "0"
    trial_dir.mkdir(parents=True)
    (trial_dir / "metrics.json").write_text('{"score": 0.5}')
    summary = log_results(
        results,
        mlflow_server.uri,
        spool_dir=tmp_path / "spool",
        analysis={"schema": "x", "decision": {"passed": True}},
        trials_dir=tmp_path / "trials",
    )
    assert len(summary.created) == 4
    assert not summary.spooled
    assert not summary.conflicts
    client, experiment_id, runs = _runs(mlflow_server.uri, results["edd"]["id"])
    assert len(runs) == 5
    parent = client.get_run(summary.parent_run_id)
    assert parent.data.tags["mlaudit.edd.digest"] == results["edd"]["digest"]
    assert parent.data.tags["mlflow.source.git.commit"] == "0" * 40
    assert parent.data.tags["mlaudit.dvc.data/train.csv"] == "5d41402abc4b2a76b9719d911017c592"
    assert json.loads(parent.data.tags["mlaudit.approvals"]) == [
        ["risk@example.com", "model-risk", "valid"]
    ]
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id, "results")}
    assert parent_files == {"results/results.json", "results/analysis.json"}

    child = client.get_run(summary.created["baseline/0"])
    assert child.data.tags["mlflow.parentRunId"] == summary.parent_run_id
    assert child.data.tags[TRIAL_KEY_TAG] == trial_key(results, "baseline", 0)
    assert child.data.params["seed"] == "0"
    assert child.data.params["arm"] == "baseline"
    assert child.data.params["features.a"] == "true"
    assert child.data.params["model.depth"] == "3"
    history = client.get_metric_history(child.info.run_id, "score")
    assert [(m.step, m.value) for m in history] == [(s, 0.5 + s / 100) for s in range(4)]
    assert child.info.status == "FINISHED"
    # Times come from the trial record (reproducible), not from the clock of the logger.
    assert child.info.start_time == to_millis("2026-11-20T10:10:00Z")
    assert child.info.end_time == to_millis("2026-11-20T10:10:30Z")
    no_a = client.get_run(summary.created["no-a/1"])
    assert no_a.data.params["features.a"] == "false"

    # The artifact manifest is uploaded and its digest sealed with the run.
    manifest_path = client.download_artifacts(
        child.info.run_id, "mlaudit/artifacts.json", str(tmp_path)
    )
    manifest = Path(manifest_path).read_bytes()
    assert json.loads(manifest) == {
        "trial/metrics.json": hashlib.sha256(b'{"score": 0.5}').hexdigest()
    }
    assert child.data.tags[run_record.ARTIFACTS_SHA256_TAG] == hashlib.sha256(manifest).hexdigest()
    assert {run_record.SEAL_SEQ_TAG, run_record.SEAL_SHA256_TAG} <= set(child.data.tags)

    verification = verify_ledger(fetch_ledger(client, mlflow_server.uri, experiment_id))
    assert verification.ok, verification.findings
    assert verification.size == 5


def test_logging_twice_creates_nothing_new(mlflow_server, tmp_path):
    results = make_results()
    first = log_results(results, mlflow_server.uri, spool_dir=tmp_path)
    second = log_results(results, mlflow_server.uri, spool_dir=tmp_path)
    assert second.created == {}
    assert second.existing == first.created
    assert second.parent_run_id == first.parent_run_id
    _, _, runs = _runs(mlflow_server.uri, results["edd"]["id"])
    assert len(runs) == 5


def test_a_run_left_running_by_a_crashed_logger_is_finished_not_duplicated(mlflow_server, tmp_path):
    results = make_results(history_steps=3)
    # A logger that died after creating the run and logging part of one history.
    from audit.tracking.runspec import parent_run, trial_run

    client = connect(mlflow_server.uri)
    experiment_id = client.create_experiment(results["edd"]["id"])
    trial_dir = tmp_path / "trials" / "baseline" / "0"
    trial_dir.mkdir(parents=True)
    (trial_dir / "metrics.json").write_text('{"score": 0.5}')
    spec = trial_run(results, results["trials"][0], [("metrics.json", trial_dir / "metrics.json")])
    assert spec is not None
    leftover = client.create_run(experiment_id, start_time=spec.start_time, tags=spec.tags)
    # Artifacts are write-once: the replay must compare, not upload again.
    client.log_artifact(leftover.info.run_id, str(trial_dir / "metrics.json"), "trial")
    first = spec.metrics[0]
    client.log_batch(
        leftover.info.run_id, metrics=[Metric(first.key, first.value, first.timestamp, first.step)]
    )
    parent_spec = parent_run(results)
    client.create_run(experiment_id, start_time=parent_spec.start_time, tags=parent_spec.tags)

    summary = log_results(
        results, mlflow_server.uri, spool_dir=tmp_path / "spool", trials_dir=tmp_path / "trials"
    )
    assert summary.resumed == {"baseline/0": leftover.info.run_id}
    assert len(summary.created) == 3
    runs = list(search_all(client, experiment_id, ""))
    assert len(runs) == 5
    assert all(r.info.status == "FINISHED" for r in runs)
    resumed = client.get_run(leftover.info.run_id)
    assert len(client.get_metric_history(resumed.info.run_id, "score")) == 3
    assert verify_ledger(fetch_ledger(client, mlflow_server.uri, experiment_id)).ok


def test_a_leftover_with_different_content_is_refused(mlflow_server, tmp_path):
    from audit.errors import TrackingError
    from audit.tracking.runspec import trial_run

    results = make_results()
    client = connect(mlflow_server.uri)
    experiment_id = client.create_experiment(results["edd"]["id"])
    spec = trial_run(results, results["trials"][0])
    assert spec is not None
    leftover = client.create_run(experiment_id, start_time=spec.start_time, tags=spec.tags)
    client.log_param(leftover.info.run_id, "seed", "99")
    with pytest.raises(TrackingError, match=r"param 'seed' is '99'"):
        log_results(results, mlflow_server.uri, spool_dir=tmp_path)


def test_a_leftover_with_a_different_artifact_is_refused(mlflow_server, tmp_path):
    from audit.errors import TrackingError
    from audit.tracking.runspec import trial_run

    results = make_results()
    client = connect(mlflow_server.uri)
    experiment_id = client.create_experiment(results["edd"]["id"])
    trial_dir = tmp_path / "trials" / "baseline" / "0"
    trial_dir.mkdir(parents=True)
    (trial_dir / "metrics.json").write_text("first")
    spec = trial_run(results, results["trials"][0])
    assert spec is not None
    leftover = client.create_run(experiment_id, start_time=spec.start_time, tags=spec.tags)
    client.log_artifact(leftover.info.run_id, str(trial_dir / "metrics.json"), "trial")
    (trial_dir / "metrics.json").write_text("second")
    with pytest.raises(TrackingError, match=r"artifact trial/metrics.json already uploaded"):
        log_results(results, mlflow_server.uri, spool_dir=tmp_path, trials_dir=tmp_path / "trials")


def test_a_trial_logged_with_other_values_is_a_conflict(mlflow_server, tmp_path, run_cli):
    results = make_results(history_steps=0)
    log_results(results, mlflow_server.uri, spool_dir=tmp_path)
    results["trials"][1]["metrics"]["score"] = 0.125
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    outcome = run_cli(
        "track", "log", path, "--tracking-uri", mlflow_server.uri, "--spool", tmp_path / "s"
    )
    assert outcome.exit_code == 1
    assert "conflict: trial baseline/1" in outcome.stderr
    assert "'score'" in outcome.stderr


def test_protocol_logger_logs_trials_as_they_finish(mlflow_server, tmp_path):
    results = make_results(seeds=(0, 1, 2))
    header = {k: v for k, v in results.items() if k != "trials"}
    logger = ProtocolLogger(mlflow_server.uri, header, tmp_path / "spool")
    run_ids = [logger.log_trial(trial) for trial in results["trials"]]
    assert all(run_ids)
    assert len(set(run_ids)) == 6
    client = connect(mlflow_server.uri)
    parent = client.get_run(logger.summary.parent_run_id)
    assert parent.info.status == "RUNNING"  # open until the protocol ends
    not_run = {"trial_id": "no-a/9", "arm": "no-a", "seed": 9, "status": "not_run"}
    assert logger.log_trial(not_run) is None
    summary = logger.close(results)
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert run_record.SEAL_SEQ_TAG in parent.data.tags
    assert summary.not_run == ["no-a/9"]


def test_cli_track_log_json_and_validation(mlflow_server, tmp_path, run_cli):
    results = make_results()
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    outcome = run_cli(
        "track",
        "log",
        path,
        "--tracking-uri",
        mlflow_server.uri,
        "--spool",
        tmp_path / "s",
        "--json",
    )
    assert outcome.exit_code == 0, outcome.stderr
    data = json.loads(outcome.stdout)  # nothing else on stdout (no MLflow "View run" lines)
    assert data["created"] == 4
    assert len(data["runs"]) == 4

    del results["plan"]
    path.write_text(json.dumps(results))
    bad = run_cli("track", "log", path, "--tracking-uri", mlflow_server.uri)
    assert bad.exit_code == 1
    assert f"{path}:: 'plan' is a required property" in bad.stderr or "'plan'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_deleted_runs_are_listed_too(mlflow_server, tmp_path):
    # search_all must see every lifecycle stage, or verify could miss a soft-deleted run.
    results = make_results(seeds=(0,))
    log_results(results, mlflow_server.uri, spool_dir=tmp_path)
    client = connect(mlflow_server.uri)
    experiment_id = resolve_experiment(client, results["edd"]["id"])
    runs = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert len(list(search_all(client, experiment_id, ""))) == len(runs) == 3


def test_a_trial_logged_twice_by_one_logger_is_one_run(mlflow_server, tmp_path):
    # The protocol engine may hand a trial over again (resume, catch-up after a restart).
    results = make_results(seeds=(0,))
    logger = ProtocolLogger(mlflow_server.uri, results, tmp_path / "spool")
    first = logger.log_trial(results["trials"][0])
    again = logger.log_trial(results["trials"][0])
    assert first == again
    assert logger.summary.existing == {"baseline/0": first}
    _, _, runs = _runs(mlflow_server.uri, results["edd"]["id"])
    assert len(runs) == 2  # the parent and one trial


def _logged(uri: str, experiment: str) -> dict[str, dict]:
    """Every run of an experiment as content only: no run or experiment ids, no seal."""
    client, _, runs = _runs(uri, experiment)

    def files(run_id: str, path: str | None = None) -> list[str]:
        found = []
        for info in client.list_artifacts(run_id, path):
            found += files(run_id, info.path) if info.is_dir else [info.path]
        return found

    return {
        run.data.tags["mlflow.runName"]: {
            "info": (run.info.status, run.info.start_time, run.info.end_time, run.info.user_id),
            "params": run.data.params,
            # The parent's id and the seal (sequence, time, digest over the run id) differ.
            "tags": {
                k: v
                for k, v in run.data.tags.items()
                if k != "mlflow.parentRunId" and not k.startswith("mlaudit.seal")
            },
            "history": {
                key: [
                    (m.step, m.timestamp, m.value)
                    for m in client.get_metric_history(run.info.run_id, key)
                ]
                for key in run.data.metrics
            },
            "inputs": [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs],
            "files": sorted(files(run.info.run_id)),
        }
        for run in runs
    }


def test_the_rest_writer_logs_what_mlflows_own_client_logs(mlflow_server, tmp_path, monkeypatch):
    # `ablate run` logs through REST JSON (no MLflow import); a server that needs MLflow's
    # connection settings gets MLflow's client. Both must leave the same runs behind.
    from audit.tracking.client import connect_writer
    from audit.tracking.rest_tracking import RestTracking

    results = make_results(history_steps=4)
    trial_dir = tmp_path / "trials" / "baseline" / "0"
    (trial_dir / "sub").mkdir(parents=True)
    (trial_dir / "metrics.json").write_text('{"score": 0.5}')
    (trial_dir / "sub" / "model.bin").write_bytes(bytes(range(256)) * 40)
    logged = {}
    for kind in ("rest", "mlflow"):
        if kind == "mlflow":
            monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")  # no effect on http
        assert isinstance(connect_writer(mlflow_server.uri), RestTracking) == (kind == "rest")
        summary = log_results(
            results,
            mlflow_server.uri,
            spool_dir=tmp_path / f"spool-{kind}",
            analysis={"schema": "x", "decision": {"passed": True}},
            trials_dir=tmp_path / "trials",
            experiment=f"parity-{kind}",
        )
        assert len(summary.created) == 4
        logged[kind] = _logged(mlflow_server.uri, f"parity-{kind}")
    assert len(logged["rest"]) == 5
    assert "trial/sub/model.bin" in logged["rest"]["baseline/0"]["files"]
    for name, run in logged["rest"].items():
        for part, value in run.items():
            assert value == logged["mlflow"][name][part], (name, part)
    assert logged["rest"] == logged["mlflow"]
