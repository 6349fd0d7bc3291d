"""20 trivial trials: `mlaudit ablate run --workers 2` vs DVC's experiment queue.

DVC side: one `dvc exp run --queue -S seed=range(0,10) -S features.a=true,false`
(20 queued experiments) + `dvc queue start -j 2`, timed until `dvc queue status`
shows every task finished. mlaudit side: the same 2 arms x 10 seeds as a signed
EDD, the whole `mlaudit ablate run` command timed. Prints the ratio (expect >= 20x);
exits 1 below it (--no-targets: only report).
Usage: .venv/bin/python bench/protocol_dvc_queue.py [--limit 100] [--no-targets]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protocol_common import BIN, bench_env, edd, make_study, mlaudit_run, sh

EXPECTED = 20.0
DVC_TRAIN = """import json, yaml
p = yaml.safe_load(open("params.yaml"))
json.dump({"score": 0.5 + 0.1 * p["features"]["a"] + p["seed"] * 1e-6}, open("metrics.json", "w"))
"""
DVC_YAML = """stages:
  train:
    cmd: python train.py
    params: [features.a, seed]
    metrics:
      - metrics.json:
          cache: false
"""


def dvc_project(root: Path) -> Path:
    repo = root / "dvc-repo"
    repo.mkdir()
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "config", "user.email", "b@example.com"], repo)
    sh(["git", "config", "user.name", "bench"], repo)
    sh(["git", "config", "commit.gpgsign", "false"], repo)
    sh([str(BIN / "dvc"), "init", "-q"], repo)
    (repo / "train.py").write_text(DVC_TRAIN)
    (repo / "params.yaml").write_text("features:\n  a: true\nseed: 0\n")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "init"], repo)
    return repo


def dvc_queue_seconds(repo: Path, seeds: int, limit: float) -> tuple[float, bool, str]:
    """(seconds, finished?, note); when not finished, seconds is the time limit."""
    dvc = str(BIN / "dvc")
    start = time.perf_counter()
    sh(
        [
            dvc,
            "exp",
            "run",
            "--queue",
            "-S",
            f"seed=range(0,{seeds})",
            "-S",
            "features.a=true,false",
        ],
        repo,
    )
    _start_queue(dvc, repo)
    try:
        return _wait_for_queue(dvc, repo, seeds, limit, start)
    finally:
        # No DVC worker outlives the benchmark, finished or not.
        for stop in (["queue", "kill", "--all"], ["queue", "stop", "--kill"]):
            _quiet([dvc, *stop], repo)


def _start_queue(dvc: str, repo: Path) -> None:
    """`dvc queue start -j 2`, its output to a file.

    The command forks a daemon that keeps the descriptors it was given; with pipes, as
    `sh` would give it, reading them waits until the last worker exits, and a celery
    worker that never drains (seen once: all 20 tasks done, the worker idle for 20
    minutes) hangs the benchmark past its limit.
    """
    log = repo.parent / "dvc-queue-start.log"
    with log.open("wb") as out:
        code = subprocess.run(
            [dvc, "queue", "start", "-j", "2"],
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=bench_env(),
            check=False,
        ).returncode
    if code != 0:
        raise SystemExit(f"dvc queue start failed ({code}): {log.read_text()[-2000:]}")


def _quiet(argv: list[str], repo: Path) -> None:
    try:
        subprocess.run(
            argv,
            cwd=repo,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=bench_env(),
            check=False,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        print(f"  warning: `{' '.join(argv[1:])}` did not finish within 120 s", file=sys.stderr)


def _wait_for_queue(
    dvc: str, repo: Path, seeds: int, limit: float, start: float
) -> tuple[float, bool, str]:
    done, states = 0, "no status yet"
    while time.perf_counter() - start < limit:
        status = sh([dvc, "queue", "status"], repo).stdout
        tasks = [line for line in status.splitlines()[1:] if line.strip() and "Worker" not in line]
        pending = [t for t in tasks if any(s in t for s in ("Queued", "Running"))]
        failed = [t for t in tasks if "Failed" in t]
        done = len(tasks) - len(pending)
        counts: dict[str, int] = {}
        for task in tasks:
            counts[task.split()[-1]] = counts.get(task.split()[-1], 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        if failed:
            return time.perf_counter() - start, False, f"failed task: {failed[0].strip()}"
        if tasks and not pending:
            return time.perf_counter() - start, True, f"{len(tasks)} experiments finished"
        time.sleep(4.0)  # each `dvc queue status` costs a second of CPU the workers need
    return limit, False, f"only {done}/{2 * seeds} finished within {limit:.0f} s: {states}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--limit", type=float, default=100.0, help="seconds to wait for DVC")
    parser.add_argument(
        "--no-targets", action="store_true", help="report only; exit 0 even when a target is missed"
    )
    args = parser.parse_args()
    trials = 2 * args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        study = make_study(Path(tmp), edd(args.seeds))
        ours = mlaudit_run(study, "out-mlaudit", "--workers", "2", "--no-cache")
        theirs, finished, note = dvc_queue_seconds(dvc_project(Path(tmp)), args.seeds, args.limit)
    at_least = "" if finished else ">= "
    print(f"{trials} trivial trials, 2 workers")
    print(f"  mlaudit ablate run            {ours:7.2f} s (whole command)")
    print(f"  dvc exp run --queue + start {at_least:>3}{theirs:6.2f} s ({note})")
    ratio = theirs / ours
    print(f"  ratio dvc / mlaudit         {at_least:>3}{ratio:6.1f}x (expect >= {EXPECTED:g}x)")
    return 0 if args.no_targets or ratio >= EXPECTED else 1


if __name__ == "__main__":
    sys.exit(main())
