"""200 trivial trials with 2 workers: `mlaudit ablate run` vs a plain `xargs -P 2`.

Both run the same 200 commands (same argv, same env variables, same trial dirs).
Prints the whole-command ratio (target <= 1.3x) and the trial-execution ratio (target
<= 1.25x).
Usage: .venv/bin/python bench/protocol_xargs.py [--seeds 100]
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protocol_common import core_seconds, edd, make_study, mlaudit_run

TARGET = 1.25
TARGET_WHOLE = 1.3  # issue 21: the whole command, fixed costs included


def xargs_seconds(repo: Path, seeds: int) -> float:
    lines = []
    for seed in range(seeds):
        for arm, overrides in (("baseline", []), ("no-a", ["features.a=false"])):
            trial_dir = repo / "out-xargs" / arm / str(seed)
            env = [
                f"MLAUDIT_SEED={seed}",
                f"PYTHONHASHSEED={seed}",
                f"MLAUDIT_ARM={arm}",
                f"MLAUDIT_TRIAL_DIR={trial_dir}",
            ]
            lines.append(shlex.join([*env, sys.executable, "trial.py", "work=0", *overrides]))
    start = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", "2", "-L", "1", "env"],
        input="\n".join(lines) + "\n",
        text=True,
        cwd=repo,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_study(Path(tmp), edd(args.seeds))
        trials = 2 * args.seeds
        xargs = xargs_seconds(repo, args.seeds)
        whole = mlaudit_run(repo, "out-mlaudit", "--workers", "2", "--no-cache")
        pool = core_seconds(repo, "out-mlaudit")
        xargs_again = xargs_seconds(repo, args.seeds)
        base = min(xargs, xargs_again)
    print(f"{trials} trivial trials, 2 workers")
    print(f"  xargs -P 2             {base:7.2f} s")
    print(
        f"  mlaudit (trials)       {pool:7.2f} s   ratio {pool / base:5.2f}x (target <= {TARGET})"
    )
    print(
        f"  mlaudit (whole command){whole:7.2f} s   ratio {whole / base:5.2f}x "
        f"(target <= {TARGET_WHOLE}; incl. approval check, git/DVC provenance, plan)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
