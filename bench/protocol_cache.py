"""Re-running a finished 200-trial protocol: every trial comes from the cache (target <= 2 s).

Runs the protocol once into out-1 (filling the project's trial cache), then times a
fresh `mlaudit ablate run` into out-2: the whole command, approval check and
provenance included. Also times `--resume` of the finished out-1 (journal only).
Exits 1 when the target is missed (--no-targets: only report).
Usage: .venv/bin/python bench/protocol_cache.py [--seeds 100] [--no-targets]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from protocol_common import edd, make_study, mlaudit_run

TARGET = 2.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument(
        "--no-targets", action="store_true", help="report only; exit 0 even when a target is missed"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_study(Path(tmp), edd(args.seeds))
        first = mlaudit_run(repo, "out-1", "--workers", "2")
        cached = mlaudit_run(repo, "out-2", "--workers", "2")
        results = json.loads((repo / "out-2" / "results.json").read_text())
        reused = sum(1 for t in results["trials"] if t["cached_from"])
        resumed = mlaudit_run(repo, "out-1", "--workers", "2", "--resume")
    trials = 2 * args.seeds
    print(f"{trials} trials: first run {first:.2f} s")
    print(
        f"  cached re-run (new out dir)  {cached:5.2f} s  ({reused}/{trials} from cache, "
        f"target <= {TARGET} s)  ratio to first run {cached / first:.3f}x"
    )
    print(f"  --resume of the finished run {resumed:5.2f} s")
    missed = cached > TARGET or reused != trials
    return 0 if args.no_targets or not missed else 1


if __name__ == "__main__":
    sys.exit(main())
