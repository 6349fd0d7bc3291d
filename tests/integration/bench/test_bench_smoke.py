"""Every benchmark still runs: each, at a toy size, must finish with exit code 0.

The figures are never asserted here (speed is measured by `make bench`, not by
tests); what is checked is that a benchmark has not silently rotted. Each one
checks its own results (bundle_create_verify, for one, asserts that the bundle
verifies), so a change that breaks what it measures fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "bench"

# Toy sizes; tracking_log and tracking_verify have no size knob and are covered by
# the tracking tests' own use of the same code paths.
RUNS = {
    "bundle_create_verify": ["--seeds", "10"],  # fewer cannot pass the gate
    "cli_startup": ["--rounds", "1"],
    # Toy synthetic study, one round; the fraud study's figures come from `make bench`.
    "e2e_overhead": ["--study", "synthetic", "--seeds", "2", "--rounds", "1", "--no-targets"],
    "executor_ray": ["--seeds", "3", "--rounds", "1", "--no-target"],  # starts its own Ray cluster
    "protocol_cache": ["--seeds", "2", "--no-targets"],
    "protocol_cpu": ["--seeds", "1", "--work", "0.05", "--no-targets"],
    "protocol_dvc_queue": ["--seeds", "1", "--no-targets"],
    "protocol_xargs": ["--seeds", "2", "--rounds", "1", "--no-targets"],
    "report_render": ["--rounds", "1"],
    # SQLite only: the PostgreSQL path is the same code, and its server start costs seconds.
    "tracking_scale": ["--trials", "20", "--shards", "2", "--backend", "sqlite"],
    "stats_bootstrap": ["--arms", "2", "--seeds", "10", "--resamples", "200", "--repeats", "1"],
    # Toy replicates cannot meet the targets; the fast-vs-real agreement is still checked.
    "stats_operating_characteristics": [
        *("--replicates", "200", "--real-per-cell", "1", "--ns", "8"),
        *("--methods-replicates", "50", "--resamples", "99", "--no-targets"),
    ],
}


def test_every_benchmark_is_listed_here() -> None:
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.endswith("_common")}
    assert scripts - {"tracking_log", "tracking_verify"} == set(RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_runs_at_a_toy_size(name: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *RUNS[name]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
