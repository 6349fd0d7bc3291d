"""`track verify --artifacts`: stored artifact files are re-hashed against the sealed manifest.

Regression from the hardening review (issue 16): overwriting a sealed run's artifact
file on the server's disk left `track verify` at exit 0, since only the manifest's
digest is sealed and the files were never read again.
"""

from __future__ import annotations

import json

import pytest
from tracking_study import make_results

from audit.tracking.client import connect, log_results
from audit.tracking.ledger import resolve_experiment


@pytest.fixture
def logged(mlflow_server, tmp_path):
    results = make_results()
    log_results(results, mlflow_server.uri, spool_dir=tmp_path / "spool")
    experiment_id = resolve_experiment(connect(mlflow_server.uri), results["edd"]["id"])
    return experiment_id, mlflow_server.db_path.parent / "artifacts" / experiment_id


def _verify(run_cli, server, experiment_id, *extra):
    return run_cli(
        "track", "verify", "--tracking-uri", server.uri, "--experiment", experiment_id, *extra
    )


def _stored_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file() and "mlaudit" not in p.parts)


def test_clean_artifacts_verify(mlflow_server, logged, run_cli):
    experiment_id, root = logged
    assert _stored_files(root)
    result = _verify(run_cli, mlflow_server, experiment_id, "--artifacts")
    assert result.exit_code == 0, result.stderr
    assert "note: artifacts: re-hashed" in result.stderr


def test_overwritten_artifact_is_named_with_run_and_path(mlflow_server, logged, run_cli):
    experiment_id, root = logged
    victim = _stored_files(root)[0]
    run_id = victim.relative_to(root).parts[0]
    path = "/".join(victim.relative_to(root / run_id / "artifacts").parts)
    victim.write_bytes(victim.read_bytes() + b"tampered")

    assert _verify(run_cli, mlflow_server, experiment_id).exit_code == 0  # without the flag
    result = _verify(run_cli, mlflow_server, experiment_id, "--artifacts")
    assert result.exit_code == 1
    assert f"changed-artifact     run {run_id}: artifact {path} was overwritten" in (result.stderr)
    assert f"run {run_id}: artifacts/{path}" in result.stderr
    report = json.loads(
        _verify(run_cli, mlflow_server, experiment_id, "--artifacts", "--json").stdout
    )
    assert [(f["kind"], f["run_id"], f["field"]) for f in report["findings"]] == [
        ("changed-artifact", run_id, f"artifacts/{path}")
    ]


def test_deleted_artifact_and_rewritten_manifest_are_named(mlflow_server, logged, run_cli):
    experiment_id, root = logged
    victim = _stored_files(root)[0]
    run_id = victim.relative_to(root).parts[0]
    victim.unlink()
    manifest = next(
        p for p in root.glob("*/artifacts/mlaudit/artifacts.json") if run_id not in p.parts
    )
    other_run = manifest.relative_to(root).parts[0]
    manifest.write_bytes(b'{"added.bin": "' + b"0" * 64 + b'"}')
    result = _verify(run_cli, mlflow_server, experiment_id, "--artifacts", "--json")
    assert result.exit_code == 1
    kinds = {(f["kind"], f["run_id"]) for f in json.loads(result.stdout)["findings"]}
    assert kinds == {("missing-artifact", run_id), ("changed-artifact", other_run)}
