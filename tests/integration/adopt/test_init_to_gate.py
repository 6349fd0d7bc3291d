"""A new project, not the example: `mlaudit init` -> sign -> verify -> run -> analyze -> gate.

Everything is real: git, DVC, ssh-keygen keys and signatures, trial processes.
The toy trainer uses only the standard library, as a user's first script might.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = str(Path(sys.executable).parent)

# Defaults equal the EDD's baseline (the trial contract); overrides come as key=value
# arguments; MLAUDIT_SEED and MLAUDIT_TRIAL_DIR come from the environment.
TRAIN_PY = r"""
import json, os, random, sys, time

config = {"features": {"scale": True, "noise_filter": True}, "model": {"depth": 3}}
for item in sys.argv[1:]:
    key, value = item.split("=", 1)
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = {"true": True, "false": False}.get(value, value)
start = time.perf_counter()
rows = open("data/train.csv").read().split()
rng = random.Random(int(os.environ["MLAUDIT_SEED"]))
acc = 0.80 + 0.05 * config["features"]["scale"] + 0.002 * config["features"]["noise_filter"]
acc += rng.gauss(0, 0.003) + len(rows) * 1e-6
# Training noise that differs between arms of one seed, as real training has: without
# it every paired difference is identical and the analysis blocks a positive verdict.
arm_rng = random.Random(os.environ["MLAUDIT_SEED"] + json.dumps(config, sort_keys=True))
acc += arm_rng.gauss(0, 0.001)
metrics = {"acc": acc, "train_seconds": time.perf_counter() - start}
with open(os.path.join(os.environ["MLAUDIT_TRIAL_DIR"], "metrics.json"), "w") as out:
    json.dump(metrics, out)
"""


def _run(cwd: Path, *argv: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(argv, cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def toy_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "digits"
    project.mkdir()
    _run(project, "git", "init", "-q", "-b", "main")
    _run(project, "git", "config", "user.email", "dev@example.com")
    _run(project, "git", "config", "user.name", "Dev")
    _run(project, "git", "config", "commit.gpgsign", "false")
    (project / "train.py").write_text(TRAIN_PY, encoding="utf-8")
    _run(project, "git", "add", "-A")
    _run(project, "git", "commit", "-q", "-m", "a training script")
    # The dataset is not in git: DVC will track it (docs/adopt.md#data).
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("x,y\n1,0\n2,1\n3,1\n", encoding="utf-8")
    # Trials run `python` from PATH: the interpreter of this test's environment.
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.chdir(project)
    return project


@pytest.mark.slow
def test_init_sign_verify_run_analyze_gate(toy_project: Path, tmp_path: Path, run_cli):
    key = tmp_path / "alice_ed25519"
    _run(tmp_path, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", str(key))
    result = run_cli(
        "init", "--yes", "--command", "python train.py",
        "--baseline", "features.scale=true", "--baseline", "features.noise_filter=true",
        "--baseline", "model.depth=3",
        "--component", "scale:features.scale=false",
        "--component", "noise-filter:features.noise_filter=false",
        "--claim", "noise-filter=non-inferior:0.01",
        "--metric", "acc:maximize", "--secondary", "train_seconds:minimize",
        "--rerun-exclude", "train_seconds",
        "--data", "data/train.csv", "--owner", "dev@example.com",
        "--approver", f"alice@example.com={key}.pub", "--seeds", "8", "--ci", "github",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "wrote    edd.yaml" in result.stdout
    assert "data: make data/train.csv DVC output(s)" in result.stdout
    edd = toy_project / "edd.yaml"
    assert edd.read_text().startswith("# yaml-language-server: $schema=")
    assert (toy_project / ".github/workflows/audit.yml").is_file()

    # What the checklist leaves to the user: the data stage and the first commit.
    _run(toy_project, f"{VENV_BIN}/dvc", "init", "-q")
    _run(toy_project, f"{VENV_BIN}/dvc", "add", "-q", "data/train.csv")
    _run(toy_project, "git", "add", "-A")
    _run(toy_project, "git", "commit", "-q", "-m", "mlaudit init")

    assert run_cli("edd", "validate", edd, "--trust-ref", "main").exit_code == 0
    signed = run_cli("edd", "sign", edd, "--key", key, "--principal", "alice@example.com")
    assert signed.exit_code == 0, signed.stderr
    _run(toy_project, "git", "add", "-A")
    _run(toy_project, "git", "commit", "-q", "-m", "approve the EDD")
    verified = run_cli("edd", "verify", edd, "--trust-ref", "main")
    assert verified.exit_code == 0, verified.stdout + verified.stderr

    out = toy_project / "out" / "run1"  # inside the project: gitignored by init
    ran = run_cli("ablate", "run", edd, "--trust-ref", "main", "--out", out)
    assert ran.exit_code == 0, ran.stderr
    assert f"trials will run {VENV_BIN}/python train.py" in ran.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["reproducibility"]["passed"] is True, results["reproducibility"]["reason"]

    analyzed = run_cli(
        "ablate", "analyze", out / "results.json", "-o", out / "analysis.json",
        "--resamples", "999",
    )  # fmt: skip
    assert analyzed.exit_code == 0, analyzed.stderr
    gate = run_cli(
        "gate", "--analysis", out / "analysis.json", "--results", out / "results.json",
        "--edd", edd, "--trust-ref", "main", "-o", out / "gate.json",
    )  # fmt: skip
    assert gate.exit_code == 0, gate.stdout + gate.stderr
    assert json.loads((out / "gate.json").read_text())["passed"] is True
