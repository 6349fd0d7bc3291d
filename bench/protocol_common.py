"""Shared set-up for the protocol benchmarks: a real git + DVC project with a signed EDD.

Not a benchmark itself: running it just builds a study in a temp dir and prints where.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MLAUDIT = str(BIN / "mlaudit")
APPROVER = "reviewer@example.com"
QUIET = {"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}

# A trivial trial: write metrics.json and exit. `work` spins the CPU that many million steps.
TRIAL = """import json, os, sys
config = dict(a.split("=", 1) for a in sys.argv[1:])
steps = int(float(config.get("work", "0")) * 1e6)
total = 0
for i in range(steps):
    total += i
seed = int(os.environ["MLAUDIT_SEED"])
d = os.environ["MLAUDIT_TRIAL_DIR"]
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "metrics.json"), "w") as f:
    json.dump({"score": 0.5 + 0.1 * (config.get("features.a") != "false") + seed * 1e-6}, f)
"""


def bench_env() -> dict[str, str]:
    """The environment benchmark commands run in: this venv's tools first, nothing phones home."""
    return {**os.environ, **QUIET, "PATH": f"{BIN}:{os.environ['PATH']}"}


def sh(argv: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, check=True, capture_output=True, text=True, env=bench_env(), **kwargs
    )


def edd(seeds: int, *, work: float = 0.0, components: int = 1) -> dict[str, Any]:
    names = "abcdefgh"[:components]
    arms = components + 1
    return {
        "schema_version": 1,
        "id": "bench-study",
        "version": 1,
        "title": "benchmark",
        "owners": ["owner@example.com"],
        "hypothesis": "h",
        "risk_tier": "low",
        "data": [{"path": "data/train.csv"}],
        "protocol": {
            # The work size is part of the signed command, like any fixed training flag.
            "command": [sys.executable, "trial.py", f"work={work:g}", "{overrides}"],
            "baseline": {"features": dict.fromkeys(names, True)},
            "components": [{"name": n, "ablate": [f"features.{n}=false"]} for n in names],
            "design": "leave-one-out",
            "seeds": list(range(seeds)),
        },
        "metrics": {"primary": {"name": "score", "goal": "maximize"}},
        "decision": {"alpha": 0.05, "claims": [{"target": "a", "claim": "improves"}]},
        "budget": {
            "max_trials": arms * seeds + 1,
            "max_wall_minutes": 60,
            "trial_timeout_seconds": 600,
        },
        # Required (the gate needs a determinism re-run): mlaudit runs one trial more
        # than the tools it is timed against, a cost every real study pays too.
        "reproducibility": {},
        "not_after": "2099-12-31T00:00:00Z",
    }


def make_study(root: Path, document: dict[str, Any], trial: str = TRIAL) -> Path:
    """git + DVC project at root/repo, trust on `main`, the EDD signed by one approver."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "config", "user.email", "b@example.com"], repo)
    sh(["git", "config", "user.name", "bench"], repo)
    sh(["git", "config", "commit.gpgsign", "false"], repo)
    (repo / "trial.py").write_text(trial)
    (repo / ".gitignore").write_text("out*/\n.mlaudit/cache/\n")
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x\n1\n")
    sh(["dvc", "init", "-q"], repo)
    sh(["dvc", "add", "-q", "data/train.csv"], repo)
    key = root / "key"
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], root)
    public = key.with_suffix(".pub").read_text().split()
    (repo / ".mlaudit").mkdir()
    (repo / ".mlaudit" / "allowed_signers").write_text(
        f'{APPROVER} namespaces="mlaudit-edd" {public[0]} {public[1]}\n'
    )
    (repo / ".mlaudit" / "policy.yaml").write_text("quorum: 1\n")
    (repo / "edd.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    sh([MLAUDIT, "edd", "sign", "edd.yaml", "--key", str(key), "--principal", APPROVER], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "study"], repo)
    return repo


def mlaudit_run(repo: Path, out: str, *extra: str) -> float:
    """Wall seconds of one `mlaudit ablate run` (the whole command, verification included)."""
    start = time.perf_counter()
    sh([MLAUDIT, "ablate", "run", "edd.yaml", "--trust-ref", "main", "--out", out, *extra], repo)
    return time.perf_counter() - start


def core_seconds(repo: Path, out: str) -> float:
    """Wall seconds the trials took inside that run (from results.json)."""
    import json

    return float(json.loads((repo / out / "results.json").read_text())["budget"]["wall_seconds"])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(make_study(Path(tmp), edd(2)))
