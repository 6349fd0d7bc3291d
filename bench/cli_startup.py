"""CLI start-up: `mlaudit --help` and `mlaudit edd verify` (3 approvals) vs `import mlflow`.

The gate runs on every pull request, so verifying an EDD must cost a small
fraction of what merely importing MLflow costs. Runs the three commands
interleaved, N rounds, and prints the median wall time of each and the ratios
(target: <= 0.15). Usage: .venv/bin/python bench/cli_startup.py [--rounds N] [--strict]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "tests" / "corpus" / "edd" / "valid" / "minimal.yaml"
TARGET = 0.15
APPROVERS = ["alice@x", "bob@x", "carol@x"]


def run(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_study(root: Path, mlaudit: str) -> Path:
    """A git repo whose main branch trusts three approvers who all signed the EDD."""
    repo = root / "repo"
    (repo / ".mlaudit").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "commit.gpgsign", "false")
    lines = []
    for principal in APPROVERS:
        key = root / principal
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
            check=True,
        )
        public = key.with_name(principal + ".pub").read_text().split()
        lines.append(f"{principal} {public[0]} {public[1]}\n")
    (repo / ".mlaudit" / "allowed_signers").write_text("".join(lines))
    (repo / ".mlaudit" / "policy.yaml").write_text("quorum: 3\nmin_seeds: 5\n")
    git(repo, "add", ".mlaudit")
    git(repo, "commit", "-q", "-m", "trust")
    edd = repo / "edd.yaml"
    shutil.copy(MINIMAL, edd)
    for principal in APPROVERS:
        argv = [mlaudit, "edd", "sign", str(edd), "--key", str(root / principal)]
        subprocess.run([*argv, "--principal", principal], check=True, capture_output=True)
    subprocess.run(
        [mlaudit, "edd", "verify", str(edd), "--trust-ref", "main"], check=True, capture_output=True
    )
    return edd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio misses 0.15")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlaudit = str(Path(sys.executable).parent / "mlaudit")
    with tempfile.TemporaryDirectory(prefix="mlaudit-bench-") as temporary:
        root = Path(temporary)
        edd = make_study(root, mlaudit)
        commands = {
            "mlaudit --help": [mlaudit, "--help"],
            "mlaudit edd verify (3 approvals)": [
                mlaudit,
                "edd",
                "verify",
                str(edd),
                "--trust-ref",
                "main",
            ],
            'python -c "import mlflow"': [sys.executable, "-c", "import mlflow"],
        }
        for argv in commands.values():  # warm the file cache once
            run(argv, root)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(run(argv, root))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians['python -c "import mlflow"']
    print(f"{'command':36} {'median s':>9} {'ratio':>7}   (rounds: {args.rounds})")
    worst = 0.0
    for name, median in medians.items():
        ratio = median / baseline
        if name.startswith("mlaudit"):
            worst = max(worst, ratio)
        print(f"{name:36} {median:9.3f} {ratio:7.3f}")
    verdict = "OK" if worst <= TARGET else "OVER TARGET"
    print(f"worst mlaudit/mlflow ratio: {worst:.3f} (target <= {TARGET}) {verdict}")
    return 1 if args.strict and worst > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
