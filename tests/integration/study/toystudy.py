"""A real, tiny ablation study: git repo with trust files on main, signed EDD, trial script.

Used by the gate and bundle tests so they judge output of the real pipeline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

TRAIN = textwrap.dedent(
    """
    import json, os, random, sys
    config = dict(arg.split("=", 1) for arg in sys.argv[1:])
    seed = int(os.environ["MLAUDIT_SEED"])
    rng = random.Random(seed)
    score = 0.70 + rng.gauss(0, 0.01)
    if config.get("features.a", "true") == "true":
        score += 0.05 + rng.gauss(0, 0.005)
    if config.get("features.b", "true") == "true":
        score += 0.0005 * rng.random()
    out = os.path.join(os.environ["MLAUDIT_TRIAL_DIR"], "metrics.json")
    with open(out, "w") as fh:
        json.dump({"score": round(score, 9), "loss": round(1 - score, 9)}, fh)
    """
)

EDD = textwrap.dedent(
    """
    schema_version: 1
    id: {edd_id}
    version: 1
    title: Toy study
    owners: [owner@example.com]
    hypothesis: Feature a improves the score; feature b is not worse.
    risk_tier: low
    data:
      - path: data/train.csv
    protocol:
      command: ["{python}", "train.py", "{{overrides}}"]
      baseline:
        features: {{a: true, b: true}}
      components:
        - name: a
          ablate: ["features.a=false"]
        - name: b
          ablate: ["features.b=false"]
      design: leave-one-out
      seeds: {seeds}
    metrics:
      primary: {{name: score, goal: maximize}}
      secondary:
        - {{name: loss, goal: minimize}}
    decision:
      alpha: 0.05
      correction: holm
      claims:
        - {{target: a, claim: improves, min_effect: 0.01}}
        - {{target: b, claim: non-inferior, margin: 0.02}}
    budget:
      max_trials: {max_trials}
      max_wall_minutes: 30
      trial_timeout_seconds: 60
    reproducibility:
      arm: baseline
      seed: 0
      tolerance: {{abs: 1.0e-9}}
    not_after: "2099-12-31T00:00:00Z"
    """
)

POLICY = "quorum: 2\nroles:\n  risk: ['carol@example.com']\nrequired_roles: [risk]\n"


def run(*argv: str | os.PathLike[str], cwd: Path, check: bool = True) -> str:
    proc = subprocess.run(
        [os.fspath(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def mlaudit(*argv: str | os.PathLike[str], cwd: Path, check: bool = True) -> str:
    return run(sys.executable, "-m", "audit", *argv, cwd=cwd, check=check)


@dataclass(frozen=True)
class ToyStudy:
    repo: Path
    edd: Path
    keys: Path
    out: Path


def build_toy_study(
    root: Path, edd_id: str = "toy-study", seeds: int = 8, promotion: str = ""
) -> ToyStudy:
    """A git repo whose main holds the trust files and whose feature branch the signed EDD.

    `promotion`: YAML appended to the EDD (its `promotion` block), signed with the rest.
    """
    repo = root / "project"
    keys = root / "keys"
    repo.mkdir(parents=True)
    keys.mkdir()
    for argv in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "T"],
        ["config", "commit.gpgsign", "false"],
    ):
        run("git", *argv, cwd=repo)
    signers = []
    for name in ("alice", "carol"):
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", keys / name, cwd=root)
        public = (keys / f"{name}.pub").read_text().split()
        signers.append(f"{name}@example.com {public[0]} {public[1]}\n")
    trust = repo / ".mlaudit"
    trust.mkdir()
    (trust / "allowed_signers").write_text("".join(signers))
    (trust / "policy.yaml").write_text(POLICY)
    (repo / ".gitignore").write_text("out/\n.mlaudit/cache/\n")
    _dvc_project(repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "trust root", cwd=repo)
    run("git", "checkout", "-qb", "feature", cwd=repo)
    (repo / "train.py").write_text(TRAIN)
    edd = repo / "edd.yaml"
    edd.write_text(
        EDD.format(
            python=sys.executable,
            edd_id=edd_id,
            seeds=list(range(seeds)),
            max_trials=max(100, 4 * seeds),
        )
        + promotion
    )
    for name in ("alice", "carol"):
        principal = f"{name}@example.com"
        mlaudit("edd", "sign", edd, "--key", keys / name, "--principal", principal, cwd=repo)
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-qm", "study", cwd=repo)
    return ToyStudy(repo=repo, edd=edd, keys=keys, out=repo / "out")


def _dvc_project(repo: Path) -> None:
    """data/train.csv tracked by DVC, so dvc.lock holds its hash."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("x,y\n1,0\n2,1\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  prepare:\n    cmd: python -c \"print('ok')\"\n    outs:\n"
        "      - data/train.csv:\n          persist: true\n"
    )
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run([*dvc, "commit", "-q", "-f"], cwd=repo, check=True, env=env, capture_output=True)


def run_pipeline(toy: ToyStudy, *, tracking_uri: str | None = None) -> None:
    """run -> analyze -> render md/html -> (checkpoint) -> gate, writing into toy.out."""
    repo, out = toy.repo, toy.out
    tracking = ["--tracking-uri", tracking_uri] if tracking_uri else []
    mlaudit(
        "ablate",
        "run",
        toy.edd,
        "--trust-ref",
        "main",
        "--out",
        out,
        "--workers",
        "2",
        *tracking,
        cwd=repo,
    )
    mlaudit("ablate", "analyze", out / "results.json", "-o", out / "analysis.json", cwd=repo)
    for fmt in ("md", "html"):
        mlaudit(
            "report",
            "render",
            out / "analysis.json",
            "--results",
            out / "results.json",
            "--format",
            fmt,
            "-o",
            out / f"report.{fmt}",
            cwd=repo,
        )
    gate_tracking: list[str | Path] = []
    if tracking_uri:
        edd_id = json.loads((out / "results.json").read_text())["edd"]["id"]
        mlaudit(
            "track",
            "checkpoint",
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            edd_id,
            "-o",
            out / "checkpoint.json",
            cwd=repo,
        )
        gate_tracking = [*tracking, "--checkpoint", out / "checkpoint.json"]
    mlaudit(
        "gate",
        *gate_args(toy),
        *gate_tracking,
        "-o",
        out / "gate.json",
        "--junit",
        out / "gate.xml",
        cwd=repo,
    )


def gate_args(toy: ToyStudy, out: Path | None = None) -> list[str | Path]:
    out = out or toy.out
    return [
        "--analysis",
        out / "analysis.json",
        "--results",
        out / "results.json",
        "--edd",
        toy.edd,
        "--trust-ref",
        "main",
    ]
