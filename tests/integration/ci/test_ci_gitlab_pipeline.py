"""The GitLab template runs for real: gitlab-ci-local executes every job on examples/fraud.

The workspace is a fresh git repository like the one a team has: the example project
with its trust root (.mlaudit/policy.yaml and allowed_signers with throwaway keys)
committed on `main`, and the signed quick EDD on a feature branch. gitlab-ci-local
(--force-shell-executor) runs the template's jobs as a merge-request pipeline: the
build job builds the training image with buildah and exports its digest through a
dotenv report, the shards run with `parallel:matrix`, the collect job starts the
immutable MLflow server, and the gate's JUnit, the report and the bundle come out
as artifacts. The tests assert on those artifacts, not on log lines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    NODE_MODULES,
    REPO,
    VENV_BIN,
    Buildah,
    BuiltImage,
    require_node_package,
    require_program,
)

pytestmark = [pytest.mark.slow, pytest.mark.buildah]

EXAMPLE = REPO / "examples" / "fraud"
EDD = "edd.quick.yaml"
APPROVERS = (
    ("risk", "risk-reviewer@risk.example.com", "model-risk"),
    ("lead", "ml-lead@example.com", "ml-lead"),
)
# Each job and the mlaudit commands its script calls: a job runs only when every
# command it needs exists in this build (see MISSING below), and so do all before it.
JOBS = {
    "mlaudit-build": [],
    "mlaudit-verify": [["edd", "verify"], ["ablate", "plan"]],
    "mlaudit-ablate": [["ablate", "run"]],
    "mlaudit-collect": [["ablate", "collect"], ["server"], ["track", "log"], ["ablate", "analyze"]],
    "mlaudit-report": [["report", "render"], ["report", "publish"]],
    "mlaudit-gate": [["gate"]],
    "mlaudit-export": [["bundle", "create"]],
}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "mlaudit test",
    "GIT_AUTHOR_EMAIL": "ml-owner@example.com",
    "GIT_COMMITTER_NAME": "mlaudit test",
    "GIT_COMMITTER_EMAIL": "ml-owner@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def _command_exists(argv: list[str]) -> bool:
    proc = subprocess.run(
        [str(VENV_BIN / "mlaudit"), *argv, "--help"], capture_output=True, text=True, check=False
    )
    return proc.returncode == 0


def runnable_jobs() -> tuple[list[str], list[str]]:
    """The jobs this build can run (a prefix of the pipeline) and what the rest lack."""
    ready: list[str] = []
    for job, commands in JOBS.items():
        missing = [" ".join(c) for c in commands if not _command_exists(c)]
        if missing:
            return ready, [f"{job}: mlaudit {', mlaudit '.join(missing)}"]
        ready.append(job)
    return ready, []


def _git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=ws, env={**os.environ, **GIT_ENV}, check=True, capture_output=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_workspace(root: Path) -> Path:
    """The example as its own repository: trust root on main, signed EDD on a branch."""
    ws = root / "ws"
    shutil.copytree(
        EXAMPLE,
        ws,
        ignore=shutil.ignore_patterns(
            "data", "mlruns", "mlartifacts", "out", "cache", "tmp", "__pycache__",
            "allowed_signers", "approvals", "demo.py", "edd.yaml", EDD, ".mlaudit-out",
        ),
    )  # fmt: skip
    for part in ("ci/gitlab", "ci/docker"):
        shutil.copytree(REPO / part, ws / part)
    shutil.copy(REPO / ".dockerignore", ws / ".dockerignore")
    shutil.copy(REPO / ".gitlab-ci.yml", ws / ".gitlab-ci.yml")
    keys = root / "keys"
    keys.mkdir()
    signers = []
    for name, principal, _ in APPROVERS:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", keys / name],
            check=True,
            capture_output=True,
        )
        kind, blob = (keys / f"{name}.pub").read_text().split()[:2]
        signers.append(f'{principal} namespaces="mlaudit-edd" {kind} {blob}')
    (ws / ".mlaudit" / "allowed_signers").write_text("\n".join(signers) + "\n")
    ignore = ws / ".gitignore"
    ignore.write_text(
        ignore.read_text().replace("/.mlaudit/allowed_signers\n", "") + ".gitlab-ci-local/\n"
    )
    _git(ws, "init", "-q", "-b", "main")
    _git(ws, "config", "commit.gpgsign", "false")
    _git(ws, "add", "-A")
    _git(ws, "commit", "-q", "-m", "Fraud project with its trust root")
    _git(ws, "checkout", "-q", "-b", "feature/device-graph")
    shutil.copy(EXAMPLE / EDD, ws / EDD)
    for name, principal, _ in APPROVERS:
        subprocess.run(
            [
                str(VENV_BIN / "mlaudit"),
                "edd",
                "sign",
                EDD,
                "--key",
                str(keys / name),
                "--principal",
                principal,
            ],
            cwd=ws,
            check=True,
            capture_output=True,
        )
    _git(ws, "add", "-A")
    _git(ws, "commit", "-q", "-m", "Signed EDD: device-graph features")
    return ws


@dataclass(frozen=True)
class PipelineRun:
    workspace: Path
    jobs: list[str]
    missing: list[str]
    returncode: int
    log: str

    @property
    def out(self) -> Path:
        return self.workspace / ".mlaudit-out"

    def job_passed(self, job: str) -> bool:
        return bool(re.search(rf"^\s*PASS\s+{re.escape(job)}\b", self.log, re.MULTILINE))


@pytest.fixture(scope="session")
def gitlab_pipeline(
    buildah: Buildah, tool_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory
) -> PipelineRun:
    require_node_package("gitlab-ci-local")
    require_program("rsync")
    jobs, missing = runnable_jobs()
    ws = make_workspace(tmp_path_factory.mktemp("gitlab"))
    variables = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_IID": "7",
        "MLAUDIT_DIR": ".",
        "MLAUDIT_EDD": EDD,
        "MLAUDIT_TRUST_REF": "main",
        "MLAUDIT_TOOL_IMAGE": tool_image.name,
        "MLAUDIT_BASE_IMAGE": buildah.base_image,
        "MLAUDIT_SERVER_PORT": str(_free_port()),
        "MLAUDIT_PUBLISH_ARGS": "--dry-run",
    }
    env = {**buildah.env, **GIT_ENV}
    # The shell executor runs the jobs on this machine: mlaudit, python and dvc are
    # this venv's, as they would be the image's on a runner.
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [
        str(NODE_MODULES / ".bin" / "gitlab-ci-local"),
        "--force-shell-executor",
        "--concurrency",
        "1",  # the shards share this work tree (shell executor), so `dvc repro` runs once
        "--no-color",
        "--ignore-predefined-vars",
        "CI_PIPELINE_SOURCE,CI_MERGE_REQUEST_TARGET_BRANCH_NAME,CI_MERGE_REQUEST_IID",
        *[x for k, v in variables.items() for x in ("--variable", f"{k}={v}")],
        *jobs,
    ]
    proc = subprocess.run(
        argv, cwd=ws, env=env, capture_output=True, text=True, check=False, timeout=1500
    )
    log = proc.stdout + proc.stderr
    (ws.parent / "pipeline.log").write_text(log)
    if missing:
        print(f"\ngitlab-ci-local ran {jobs}; not yet runnable: {missing}")
    return PipelineRun(ws, jobs, missing, proc.returncode, log)


def _needs(run: PipelineRun, job: str) -> None:
    if job not in run.jobs:
        pytest.fail(f"{job} cannot run in this build: {run.missing}")


def test_every_job_of_the_template_ran(gitlab_pipeline: PipelineRun) -> None:
    assert gitlab_pipeline.missing == [], "every mlaudit command the template calls exists"
    assert gitlab_pipeline.jobs == list(JOBS)


def test_the_jobs_before_the_gate_pass(gitlab_pipeline: PipelineRun) -> None:
    for job in gitlab_pipeline.jobs:
        if job in {"mlaudit-gate", "mlaudit-export"}:
            continue
        assert gitlab_pipeline.job_passed(job), f"{job} failed:\n{gitlab_pipeline.log[-6000:]}"


def test_the_build_job_exports_the_image_digest(
    gitlab_pipeline: PipelineRun, buildah: Buildah
) -> None:
    dotenv = (gitlab_pipeline.out / "build.env").read_text()
    m = re.fullmatch(r"MLAUDIT_IMAGE_DIGEST=(sha256:[0-9a-f]{64})\n", dotenv)
    assert m, dotenv
    ids = buildah.run("images", "--no-trunc", "--format", "{{.ID}}", "mlaudit-training:ci").split()
    assert [f"sha256:{i.removeprefix('sha256:')}" for i in ids] == [m.group(1)]
    # The image the pipeline built is a working training image.
    ctr = buildah.run("from", "--quiet", "localhost/mlaudit-training:ci").strip()
    try:
        out = buildah.run(
            "run", "--isolation", "chroot", ctr, "--", "python", "-c", "import sklearn"
        )
        assert out == ""
    finally:
        buildah.run("rm", ctr, check=False)


def test_the_shards_cover_the_plan_and_record_the_image(gitlab_pipeline: PipelineRun) -> None:
    _needs(gitlab_pipeline, "mlaudit-collect")
    plan = json.loads((gitlab_pipeline.out / "plan.json").read_text())
    assert [s["MLAUDIT_SHARD"] for s in plan] == ["1/4", "2/4", "3/4", "4/4"]
    shard_dirs = sorted(p.name for p in gitlab_pipeline.out.glob("shard-*"))
    assert shard_dirs == ["shard-1", "shard-2", "shard-3", "shard-4"]
    results = json.loads((gitlab_pipeline.out / "final" / "results.json").read_text())
    planned = sum(int(s["MLAUDIT_SHARD_TRIALS"]) for s in plan)
    trials = results["trials"]
    assert len(trials) >= planned
    digest = (gitlab_pipeline.out / "build.env").read_text().strip().split("=", 1)[1]
    assert digest in json.dumps(results["provenance"]), "MLAUDIT_IMAGE_DIGEST reached provenance"


def test_the_gate_result_matches_the_analysis(gitlab_pipeline: PipelineRun) -> None:
    _needs(gitlab_pipeline, "mlaudit-gate")
    analysis = json.loads((gitlab_pipeline.out / "final" / "analysis.json").read_text())
    junit = ET.parse(gitlab_pipeline.out / "gate.xml").getroot()
    cases = junit.findall(".//testcase")
    assert cases, "one testcase per gate rule"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    passed = gitlab_pipeline.job_passed("mlaudit-gate")
    assert passed == (not failed), failed
    assert passed == bool(analysis["decision"]["passed"]), analysis["decision"]


def test_the_report_and_bundle_are_artifacts(gitlab_pipeline: PipelineRun) -> None:
    _needs(gitlab_pipeline, "mlaudit-export")
    report = (gitlab_pipeline.out / "final" / "report.md").read_text()
    assert report.strip()
    bundle = gitlab_pipeline.out / "bundle.tar.gz"
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "bundle", "verify", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
