"""Runs the GitLab template with gitlab-ci-local on a workspace laid out like this repo.

Used by the session fixture `gitlab_pipeline` (conftest): the training image the
pipeline's build job makes is also what test_ci_images checks, so it is built once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ci_support import (
    NODE_MODULES,
    PIPELINE_SECONDS,
    REPO,
    VENV_BIN,
    Buildah,
    BuiltImage,
    run_limited,
)

PROJECT = "examples/fraud"
EXAMPLE = REPO / PROJECT
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
    "mlaudit-gate": [["gate"]],
    "mlaudit-report": [["report", "render"], ["report", "publish"]],
    "mlaudit-export": [["bundle", "create"]],
}
# Predefined variables this run sets on purpose (gitlab-ci-local warns otherwise).
PREDEFINED_OVERRIDES = (
    "CI_PIPELINE_SOURCE",
    "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
    "CI_MERGE_REQUEST_IID",
    "GITLAB_CI",
    "CI_PROJECT_ID",
    "CI_API_V4_URL",
    "CI_SERVER_URL",
)
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


def _git(ws: Path, *args: str, environ: Mapping[str, str]) -> None:
    subprocess.run(
        ["git", *args], cwd=ws, env={**environ, **GIT_ENV}, check=True, capture_output=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The pipeline is under test, not the study: the quick EDD cut to two components (the
# proposed one and one non-inferiority claim) and the production reference on a
# tenth of the cards, 33 trials instead of 49 on a third of the data. Each cut is
# exact, so a change to the example's EDD shows up here rather than passing unseen.
SMALLER_STUDY = (
    ('"data.sample=0.3", "model.max_iter=60"', '"data.sample=0.1", "model.max_iter=30"'),
    (
        "    - name: velocity\n"
        "      description: Card velocity features (bursts, 24h spend, gaps, new merchant).\n"
        '      ablate: ["features.velocity=false"]\n'
        "    - name: merchant-risk\n"
        "      description: Merchant fraud rate, target-encoded out-of-fold (folds group cards).\n"
        '      ablate: ["features.merchant_risk=false"]\n',
        "",
    ),
    ("    - {target: velocity, claim: non-inferior, margin: 0.01}\n", ""),
    ("    - {target: merchant-risk, claim: non-inferior, margin: 0.01}\n", ""),
)


def smaller_study(edd_text: str) -> str:
    for old, new in SMALLER_STUDY:
        if edd_text.count(old) != 1:
            raise AssertionError(f"{EDD} changed: update SMALLER_STUDY (looked for {old!r})")
        edd_text = edd_text.replace(old, new)
    return edd_text


def make_workspace(root: Path, environ: Mapping[str, str]) -> Path:
    """This repository's layout: the project in examples/fraud, the CI files at the top.

    The trust root is on main in the project's folder (examples/fraud/.mlaudit/), with
    throwaway keys; the signed EDD is on a branch. The pipeline runs with MLAUDIT_DIR
    set to the project's folder, as this repository's own .gitlab-ci.yml does.
    """
    ws = root / "ws"
    project = ws / PROJECT
    shutil.copytree(
        EXAMPLE,
        project,
        ignore=shutil.ignore_patterns(
            "data", "mlruns", "mlartifacts", "out", "cache", "tmp", "__pycache__",
            "allowed_signers", "approvals", "demo.py", "edd.yaml", EDD, ".mlaudit-out",
        ),
    )  # fmt: skip
    for part in ("ci/gitlab", "ci/docker"):
        shutil.copytree(REPO / part, ws / part)
    for name in (".dockerignore", ".gitlab-ci.yml"):
        shutil.copy(REPO / name, ws / name)
    (ws / ".gitignore").write_text((REPO / ".gitignore").read_text() + ".gitlab-ci-local/\n")
    keys = root / "keys"
    keys.mkdir()
    signers = []
    for name, principal, _ in APPROVERS:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", keys / name],
            env=dict(environ),
            check=True,
            capture_output=True,
        )
        kind, blob = (keys / f"{name}.pub").read_text().split()[:2]
        signers.append(f'{principal} namespaces="mlaudit-edd" {kind} {blob}')
    (project / ".mlaudit" / "allowed_signers").write_text("\n".join(signers) + "\n")
    _git(ws, "init", "-q", "-b", "main", environ=environ)
    _git(ws, "config", "commit.gpgsign", "false", environ=environ)
    _git(ws, "add", "-A", environ=environ)
    _git(ws, "commit", "-q", "-m", "Fraud project with its trust root", environ=environ)
    _git(ws, "checkout", "-q", "-b", "feature/device-graph", environ=environ)
    (project / EDD).write_text(smaller_study((EXAMPLE / EDD).read_text()))
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
            cwd=project,
            env=dict(environ),
            check=True,
            capture_output=True,
        )
    _git(ws, "add", "-A", environ=environ)
    _git(ws, "commit", "-q", "-m", "Signed EDD: device-graph features", environ=environ)
    return ws


@dataclass(frozen=True)
class PipelineRun:
    workspace: Path
    training_image: str
    jobs: list[str]
    missing: list[str]
    returncode: int
    log: str

    @property
    def out(self) -> Path:
        return self.workspace / ".mlaudit-out"

    def job_passed(self, job: str) -> bool:
        return bool(re.search(rf"^\s*PASS\s+{re.escape(job)}\b", self.log, re.MULTILINE))


@contextmanager
def tracking_server(root: Path, environ: Mapping[str, str]) -> Iterator[str]:
    """A shared `mlaudit server` on loopback, as a team runs one; stopped as a group."""
    store = root / "tracking"
    store.mkdir()
    port = _free_port()
    with (store / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "mlaudit"), "server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=store,
            env=dict(environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((store / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield uri
    finally:
        # mlflow leaves worker processes behind on SIGTERM: stop the whole group.
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def run_pipeline(
    buildah: Buildah, tool_image: BuiltImage, root: Path, environ: Mapping[str, str]
) -> PipelineRun:
    """Run the template's jobs. `environ`: the environment as the session began (this may
    run in a thread beside tests that change os.environ for a while)."""
    jobs, missing = runnable_jobs()
    ws = make_workspace(root, environ)
    training_image = f"localhost/mlaudit-training:test-{os.getpid()}"
    variables = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_IID": "7",
        # What a GitLab runner sets and gitlab-ci-local does not; the report job
        # publishes with --dry-run, so nothing is sent to this address.
        "GITLAB_CI": "true",
        "CI_PROJECT_ID": "4242",
        "CI_API_V4_URL": "http://127.0.0.1:9/api/v4",
        "CI_SERVER_URL": "http://127.0.0.1:9",
        "MLAUDIT_DIR": PROJECT,
        "MLAUDIT_EDD": EDD,
        "MLAUDIT_TRUST_REF": "main",
        "MLAUDIT_TOOL_IMAGE": tool_image.name,
        "MLAUDIT_LOCAL_IMAGE": training_image,
        "MLAUDIT_BASE_IMAGE": buildah.base_image,
        "MLAUDIT_SERVER_PORT": str(_free_port()),
        "MLAUDIT_PUBLISH_ARGS": "--dry-run",
        # The template says vfs (works in any runner); use the store's own driver.
        "STORAGE_DRIVER": buildah.driver,
    }
    env = {**buildah.env, **GIT_ENV}
    # The shell executor runs the jobs on this machine: mlaudit, python and dvc are
    # this venv's, as they would be the image's on a runner.
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    # The job shells read ~/.bashrc; on these machines it runs `pyenv init`, which
    # puts pyenv's shims ahead of the venv, so `python` in a trial would be another
    # interpreter. A HOME of its own keeps the jobs to the environment given here.
    home = root / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env.pop("MLFLOW_TRACKING_URI", None)
    argv = [
        str(NODE_MODULES / ".bin" / "gitlab-ci-local"),
        "--force-shell-executor",
        "--concurrency",
        "1",  # the shards share this work tree (shell executor), so `dvc repro` runs once
        "--no-color",
        "--ignore-predefined-vars",
        ",".join(PREDEFINED_OVERRIDES),
        *[x for k, v in variables.items() for x in ("--variable", f"{k}={v}")],
        *jobs,
    ]
    with tracking_server(root, environ) as uri:
        argv += ["--variable", f"MLAUDIT_TRACKING_URI={uri}"]
        proc = run_limited(
            argv,
            seconds=PIPELINE_SECONDS,
            what="the GitLab pipeline (gitlab-ci-local)",
            knob="MLAUDIT_CI_PIPELINE_TIMEOUT",
            cwd=ws,
            env=env,
        )
    log = proc.stdout + proc.stderr
    (ws.parent / "pipeline.log").write_text(log)
    if missing:
        print(f"\ngitlab-ci-local ran {jobs}; not yet runnable: {missing}")
    return PipelineRun(ws, training_image, jobs, missing, proc.returncode, log)
