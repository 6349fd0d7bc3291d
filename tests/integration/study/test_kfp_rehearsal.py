"""Kubeflow export on a real toy study: compile, then rehearse every task with kfp.local.

kfp.local's SubprocessRunner runs lightweight Python components only (container tasks
need its DockerRunner, and there is no Docker engine here), so the rehearsal runs the
same argv, task for task, from Python components (audit.protocol.kfp_components) on
real git, ssh-keygen, DVC and the session's MLflow server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from toystudy import ToyStudy, build_toy_study, run

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]
IMAGE = "registry.example.com/training@sha256:" + "0" * 64


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> ToyStudy:
    toy = build_toy_study(
        tmp_path_factory.mktemp("kfp"), edd_id=f"kfp-{uuid.uuid4().hex[:8]}", seeds=4
    )
    # The data reaches the cluster through a DVC remote; the pipeline's setup pulls it.
    run(*DVC, "remote", "add", "-q", "-d", "store", toy.repo.parent / "dvc-store", cwd=toy.repo)
    run(*DVC, "push", "-q", cwd=toy.repo)
    run("git", "commit", "-qam", "data remote", cwd=toy.repo)
    # The pipeline clones the project, where the protected branch is origin/main.
    run("git", "remote", "add", "origin", toy.repo, cwd=toy.repo)
    run("git", "fetch", "-q", "origin", cwd=toy.repo)
    return toy


def export(toy: ToyStudy, uri: str, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "audit",
        "ablate",
        "export",
        "--kfp",
        toy.edd,
        "-o",
        toy.repo.parent / "pipeline.yaml",
        "--image",
        IMAGE,
        "--tracking-uri",
        uri,
        "--trust-ref",
        "origin/main",
        "--shards",
        "1",
        "--setup",
        " ".join([*DVC, "pull", "-q"]),
        "--json",
        *extra,
    ]
    return subprocess.run(
        [str(a) for a in argv], cwd=toy.repo, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def rehearsal(toy: ToyStudy, mlflow_server) -> dict:
    proc = export(toy, mlflow_server.uri, "--rehearse", toy.repo.parent / "rehearsal")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout)


def bundle_member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle, "r:gz") as archive:
        handle = archive.extractfile(name)
        assert handle is not None, name
        return handle.read()


def test_rehearsal_runs_every_task_and_publishes_a_bundle_with_the_gate(rehearsal):
    assert rehearsal["rehearsal"]["succeeded"] is True
    bundle = Path(rehearsal["rehearsal"]["bundle"])
    gate = json.loads(bundle_member(bundle, "results/gate.json"))
    assert gate["passed"] is True, gate.get("reasons")
    assert gate["edd"]["digest"] == rehearsal["edd"]["digest"]


def test_a_shard_given_another_edd_digest_refuses_to_run(toy: ToyStudy, tmp_path: Path):
    """What each shard task does when the checked-out EDD is not the one the pipeline pins."""
    other = "0" * 64
    proc = mlaudit_proc(
        toy,
        "ablate",
        "run",
        toy.edd,
        "--trust-ref",
        "origin/main",
        "--out",
        tmp_path / "out",
        "--expect-digest",
        other,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"pinned to sha256:{other}" in proc.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_export_refuses_an_edd_that_differs_from_the_pinned_commit(toy: ToyStudy, tmp_path: Path):
    original = toy.edd.read_bytes()
    toy.edd.write_bytes(original + b"# edited after signing\n")
    try:
        proc = export(toy, "http://127.0.0.1:1")
    finally:
        toy.edd.write_bytes(original)
    assert proc.returncode == 1, proc.stderr
    assert "is not the file verified here" in proc.stderr


def mlaudit_proc(toy: ToyStudy, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "audit", *map(str, argv)]
    return subprocess.run(command, cwd=toy.repo, capture_output=True, text=True, check=False)


def test_the_gate_refuses_to_judge_another_edd_than_the_pinned_one(
    toy: ToyStudy, rehearsal: dict, tmp_path: Path
):
    """The gate task's pin, on the very results and analysis the rehearsal bundled."""
    bundle = Path(rehearsal["rehearsal"]["bundle"])
    for name in ("results.json", "analysis.json"):
        (tmp_path / name).write_bytes(bundle_member(bundle, f"results/{name}"))
    other = "1" * 64
    proc = mlaudit_proc(
        toy,
        "gate",
        "--analysis",
        tmp_path / "analysis.json",
        "--results",
        tmp_path / "results.json",
        "--edd",
        toy.edd,
        "--trust-ref",
        "origin/main",
        "--expect-digest",
        other,
    )
    assert proc.returncode == 1, proc.stderr
    assert f"pinned to sha256:{other}" in proc.stderr
