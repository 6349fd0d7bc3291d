"""CPU-bound trials: 2 workers vs 1 (target: >= 1.8x faster).

Each trial spins the CPU for a fixed number of steps; both runs execute the same
trials (no cache). On a machine with fewer than 2 idle cores the ratio says so.
Exits 1 when the target is missed (--no-targets: only report).
Usage: .venv/bin/python bench/protocol_cpu.py [--seeds 4] [--work 8] [--no-targets]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from protocol_common import core_seconds, edd, make_study, mlaudit_run

TARGET = 1.8


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--work", type=float, default=8.0, help="million loop steps per trial")
    parser.add_argument(
        "--no-targets", action="store_true", help="report only; exit 0 even when a target is missed"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_study(Path(tmp), edd(args.seeds, work=args.work))
        mlaudit_run(repo, "out-1", "--workers", "1", "--no-cache")
        one = core_seconds(repo, "out-1")
        mlaudit_run(repo, "out-2", "--workers", "2", "--no-cache")
        two = core_seconds(repo, "out-2")
    load = os.getloadavg()[0]
    print(
        f"{2 * args.seeds} CPU-bound trials ({args.work:g}M steps each), {os.cpu_count()} cores, "
        f"load average {load:.1f}"
    )
    print(f"  1 worker   {one:6.2f} s")
    print(f"  2 workers  {two:6.2f} s   speed-up {one / two:4.2f}x (target >= {TARGET}x)")
    return 0 if args.no_targets or one / two >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
