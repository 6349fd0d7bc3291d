"""Build real study projects for protocol tests: git + DVC repo, trial script, signed EDD.

Approvals are real `ssh-keygen -Y sign` signatures over the EDD's canonical bytes,
checked against trust files committed on `main` (the protected ref).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

VENV_BIN = str(Path(sys.executable).parent)
APPROVER = "reviewer@example.com"

# A tiny trial program: reads Hydra-style overrides (argv) or params.yaml, leaves
# side-effect markers so tests can count executions, writes metrics.json.
TRAIN_PY = r"""
import json, os, sys, time, pathlib, yaml

trial_dir = pathlib.Path(os.environ["MLAUDIT_TRIAL_DIR"])
seed = int(os.environ["MLAUDIT_SEED"])
arm = os.environ["MLAUDIT_ARM"]
config = yaml.safe_load(open("params.base.yaml"))
params = trial_dir / "params.yaml"
if params.exists():
    config = yaml.safe_load(params.read_text())
for item in sys.argv[1:]:
    key, _, value = item.partition("=")
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = yaml.safe_load(value)
markers = os.environ.get("STUDY_MARKERS")
# The determinism re-run (its trial dir under reproducibility/) is told apart by a suffix.
rerun = trial_dir.parent.parent.name == "reproducibility"
tag = f"{arm}~{seed}~{os.getpid()}" + ("~rerun" if rerun else "")
if markers:
    pathlib.Path(markers, tag + ".start").touch()
behaviour = config.get("behaviour", "ok")
time.sleep(float(config.get("sleep", 0)))
if behaviour == "hang_once" and seed == 0:  # the first attempt names its parent and hangs
    hung = pathlib.Path(markers, f"{arm}~{seed}.hung")
    if not hung.exists():
        partial = pathlib.Path(markers, "hung.partial")
        partial.write_text(str(os.getppid()))
        partial.rename(hung)
        time.sleep(600)
block = os.environ.get("STUDY_BLOCK_SEED")
if block and seed == int(block):  # hold until the test releases it
    pathlib.Path(markers, tag + ".blocked").touch()
    while not pathlib.Path(markers, "release").exists():
        time.sleep(0.02)
if behaviour == "hang":
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    pathlib.Path(trial_dir, "grandchild.pid").write_text(str(child.pid))
    time.sleep(600)
if behaviour == "flaky" and not (trial_dir / "flaked").exists():
    (trial_dir / "flaked").touch()
    sys.exit(75)
if behaviour == "crash":
    print("boom: the model exploded", file=sys.stderr)
    sys.exit(3)
score = 0.5 + 0.1 * config["features"]["a"] + 0.01 * config["features"]["b"] + seed * 1e-4
if behaviour == "noisy":
    score += (time.time_ns() % 1000) * 1e-6
metrics = {"score": score, "nested": {"loss": 1 - score}}
if config.get("timing"):  # a wall-clock metric: never the same twice
    metrics["train_seconds"] = 1 + (time.time_ns() % 10**6) * 1e-6
    metrics["epoch_seconds"] = 2 + (time.perf_counter_ns() % 10**6) * 1e-6
if behaviour == "emit_nan":
    metrics["score"] = float("nan")
text = json.dumps(metrics) if behaviour != "garbage" else "{not json"
(trial_dir / "metrics.json").write_text(text)
if markers:
    pathlib.Path(markers, tag + ".done").touch()
"""

BASE_EDD: dict[str, Any] = {
    "schema_version": 1,
    "id": "toy-study",
    "version": 1,
    "title": "Toy study",
    "owners": ["owner@example.com"],
    "hypothesis": "Feature a improves the score.",
    "risk_tier": "low",
    "data": [{"path": "data/train.csv"}],
    "protocol": {
        "command": [sys.executable, "train.py", "{overrides}"],
        "baseline": {"features": {"a": True, "b": True}, "model": {"depth": 3}, "sleep": 0},
        "components": [
            {"name": "a", "ablate": ["features.a=false"]},
            {"name": "b", "ablate": ["features.b=false"]},
        ],
        "references": [{"name": "production", "overrides": ["features.b=false"]}],
        "design": "leave-one-out",
        "seeds": [0, 1, 2],
    },
    "metrics": {
        "primary": {"name": "score", "goal": "maximize"},
        "secondary": [{"name": "nested.loss", "goal": "minimize"}],
    },
    "decision": {
        "alpha": 0.05,
        "claims": [{"target": "a", "claim": "improves"}],
    },
    "budget": {"max_trials": 100, "max_wall_minutes": 30, "trial_timeout_seconds": 60},
    "reproducibility": {"arm": "baseline", "seed": 0, "tolerance": {"abs": 1e-12}},
    "not_after": "2099-12-31T00:00:00Z",
}


def edd_document(**protocol: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE_EDD)
    document["protocol"].update(protocol)
    return document


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def dvc(repo: Path, *args: str) -> None:
    subprocess.run(
        [f"{VENV_BIN}/dvc", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )


@dataclass
class Study:
    root: Path
    edd: Path
    key: Path

    def write_edd(
        self, document: dict[str, Any], *, sign: bool = True, commit: bool = True
    ) -> None:
        self.edd.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        for old in (self.root / "approvals").glob("*.sig"):
            old.unlink()
        if sign:
            from audit.edd.approve import sign_edd

            sign_edd(self.edd, key=self.key, principal=APPROVER)
        if commit:
            self.commit("EDD")

    def commit(self, message: str) -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)

    def run_args(self, out: Path, *extra: str) -> list[str]:
        return ["ablate", "run", str(self.edd), "--trust-ref", "main", "--out", str(out), *extra]


def make_template(repo: Path) -> Path:
    """An initialised project (git, DVC data, trust files, approver key) to copy per test."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "commit.gpgsign", "false")
    (repo / "train.py").write_text(TRAIN_PY, encoding="utf-8")
    (repo / ".gitignore").write_text("out*/\n.mlaudit/cache/\nmarkers/\n", encoding="utf-8")
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    dvc(repo, "init", "-q")
    dvc(repo, "add", "-q", "data/train.csv")
    key = repo / ".approver" / "reviewer_key"
    key.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", APPROVER, "-f", str(key)],
        check=True,
    )
    public = key.with_suffix(".pub").read_text().split()
    trust = repo / ".mlaudit"
    trust.mkdir()
    (trust / "allowed_signers").write_text(
        f'{APPROVER} namespaces="mlaudit-edd" {public[0]} {public[1]}\n', encoding="utf-8"
    )
    (trust / "policy.yaml").write_text("quorum: 1\n", encoding="utf-8")
    return repo


def make_study(
    template: Path, repo: Path, document: dict[str, Any] | None = None, *, sign: bool = True
) -> Study:
    """A committed copy of `template` at `repo` with `document` as its (signed) EDD."""
    shutil.copytree(template, repo, symlinks=True)
    key = repo.parent / "reviewer_key"
    shutil.move(repo / ".approver" / "reviewer_key", key)
    shutil.rmtree(repo / ".approver")
    document = document or edd_document()
    baseline = document["protocol"]["baseline"]
    (repo / "params.base.yaml").write_text(yaml.safe_dump(baseline), encoding="utf-8")
    study = Study(root=repo, edd=repo / "edd.yaml", key=key)
    study.write_edd(document, sign=sign)
    return study
