"""Report rendering: a 200-trial, 10-component study in Markdown, HTML, JSON and JUnit.

Budget: all four formats in <= 0.5 s, interpreter start excluded. Prints
  cold  - a fresh process, timed from before `import audit.report` (so the lazy
          imports of jsonschema, markdown and matplotlib are counted) through
          loading + validating both files and rendering all four formats;
  cold, matplotlib pre-imported - the same, with matplotlib's import (the
          largest single cost, ~0.4 s on an idle machine) before the clock;
  warm  - the same four renders again in a long-lived process (median of N).
and each figure's ratio to the 0.5 s budget.
Usage: .venv/bin/python bench/report_render.py [--rounds N] [--strict]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 0.5
FORMATS = ("md", "html", "json", "junit")

COLD = """
import sys, time
if sys.argv[3] == "preimport":
    import matplotlib.figure, matplotlib.backends.backend_svg
start = time.perf_counter()
from audit.report import load_inputs, render
inputs = load_inputs(*map(__import__('pathlib').Path, sys.argv[1:3]))
loaded = time.perf_counter()
times = {}
for fmt in ("md", "html", "json", "junit"):
    t = time.perf_counter()
    render(inputs, fmt)
    times[fmt] = time.perf_counter() - t
end = time.perf_counter()
print(__import__('json').dumps({"total": end - start, "load": loaded - start, **times}))
"""


def make_study(folder: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "tests" / "unit" / "report"))
    from report_factory import build

    analysis, results = build(components=[f"component_{i}" for i in range(10)], seeds=20, failed=3)
    results["trials"] = results["trials"][:200]
    results["plan"]["trial_count"] = 200
    paths = folder / "analysis.json", folder / "results.json"
    paths[0].write_text(json.dumps(analysis))
    paths[1].write_text(json.dumps(results))
    return paths


def cold(paths: tuple[Path, Path], preimport: bool = False) -> dict[str, float]:
    mode = "preimport" if preimport else "cold"
    proc = subprocess.run(
        [sys.executable, "-c", COLD, str(paths[0]), str(paths[1]), mode],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, float] = json.loads(proc.stdout)
    return result


def warm(paths: tuple[Path, Path], rounds: int) -> tuple[float, dict[str, float]]:
    from audit.report import load_inputs, render

    inputs = load_inputs(*paths)
    for fmt in FORMATS:
        render(inputs, fmt)  # imports and caches out of the way
    totals, per_format = [], {fmt: [] for fmt in FORMATS}
    for _ in range(rounds):
        start = time.perf_counter()
        for fmt in FORMATS:
            t = time.perf_counter()
            render(inputs, fmt)
            per_format[fmt].append(time.perf_counter() - t)
        totals.append(time.perf_counter() - start)
    return statistics.median(totals), {k: statistics.median(v) for k, v in per_format.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--strict", action="store_true", help="exit 1 if warm is over budget")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_study(Path(tmp))
        colds = [cold(paths) for _ in range(3)]
        cold_total = statistics.median(c["total"] for c in colds)
        cold_load = statistics.median(c["load"] for c in colds)
        pre = statistics.median(cold(paths, preimport=True)["total"] for _ in range(3))
        warm_total, per_format = warm(paths, args.rounds)
    print("report render: 200 trials, 10 components, md + html + json + junit")
    print(f"  cold (fresh process, imports + load/validate + 4 renders): {cold_total:.3f} s "
          f"(of which imports + load {cold_load:.3f} s)  ratio to {BUDGET} s budget: "
          f"{cold_total / BUDGET:.2f}")  # fmt: skip
    print(f"  cold, matplotlib imported before the clock starts:          {pre:.3f} s  "
          f"ratio to {BUDGET} s budget: {pre / BUDGET:.2f}")  # fmt: skip
    print(f"  warm (4 renders, median of {args.rounds}):                  {warm_total:.3f} s  "
          f"ratio to {BUDGET} s budget: {warm_total / BUDGET:.2f}")  # fmt: skip
    print(
        "  warm per format: " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in per_format.items())
    )
    return 1 if args.strict and warm_total > BUDGET else 0


if __name__ == "__main__":
    sys.exit(main())
