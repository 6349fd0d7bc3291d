"""Benchmark: log 5 trials with mlaudit (batched) vs the plain MLflow fluent API.

Each trial: 30 params, 10 metrics x 20 steps, 10 tags, 2 artifacts. The fluent side
does what a training script usually does: one call per value. Both log to the same
real `mlflow server` (append-only store, SQLite) started here. Prints both times and
the ratio (target: mlaudit >= 20x faster); exits 1 below it.

    .venv/bin/python bench/tracking_log.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TRIALS = 5
PARAMS = 30  # 28 config keys + arm + seed
METRICS = 10
STEPS = 20
TAGS = 10
ARTIFACTS = 2


def study(edd_id: str) -> dict[str, Any]:
    baseline = {f"k{i:02d}": i for i in range(PARAMS - 2)}
    trials = []
    for seed in range(TRIALS):
        trials.append(
            {
                "trial_id": f"baseline/{seed}",
                "arm": "baseline",
                "seed": seed,
                "status": "succeeded",
                "metrics": {f"m{j}": 0.5 + j for j in range(METRICS)},
                "metric_history": {
                    f"m{j}": [
                        {"step": s, "value": 0.5 + j + s / 100, "timestamp": 1_790_000_000_000 + s}
                        for s in range(STEPS)
                    ]
                    for j in range(METRICS)
                },
                "started_at": f"2026-11-20T10:0{seed}:00Z",
                "finished_at": f"2026-11-20T10:0{seed}:30Z",
            }
        )
    return {
        "schema": "mlaudit/results/v1",
        "edd": {
            "id": edd_id,
            "version": 1,
            "digest": hashlib.sha256(edd_id.encode()).hexdigest(),
            "document": {"id": edd_id, "protocol": {"baseline": baseline}},
        },
        "plan": {
            "design": "leave-one-out",
            "arms": [{"name": "baseline", "kind": "baseline", "overrides": []}],
            "seeds": list(range(TRIALS)),
            "command": ["python", "train.py"],
            "trial_count": TRIALS,
        },
        "provenance": {"git": {"commit": "0" * 40}, "fingerprint": "f" * 64},
        "trials": trials,
        "budget": {
            "max_trials": 10,
            "max_wall_minutes": 10,
            "trials_run": TRIALS,
            "wall_seconds": 10.0,
            "exhausted": False,
        },
        "created_at": "2026-11-20T10:00:00Z",
    }


def make_trial_dirs(root: Path) -> Path:
    for seed in range(TRIALS):
        folder = root / "baseline" / str(seed)
        folder.mkdir(parents=True)
        for a in range(ARTIFACTS):
            (folder / f"artifact{a}.txt").write_text(f"trial {seed} artifact {a}\n" * 100)
    return root


def with_mlaudit(uri: str, results: dict[str, Any], trials_dir: Path, spool: Path) -> float:
    from audit.tracking.client import log_results

    started = time.perf_counter()
    summary = log_results(results, uri, spool_dir=spool, trials_dir=trials_dir)
    elapsed = time.perf_counter() - started
    assert len(summary.created) == TRIALS, summary.to_json()
    return elapsed


def with_fluent(uri: str, trials_dir: Path) -> float:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("fluent-baseline")
    started = time.perf_counter()
    for seed in range(TRIALS):
        with mlflow.start_run(run_name=f"baseline/{seed}"):
            for i in range(PARAMS - 2):
                mlflow.log_param(f"k{i:02d}", i)
            mlflow.log_param("arm", "baseline")
            mlflow.log_param("seed", seed)
            for j in range(METRICS):
                for s in range(STEPS):
                    mlflow.log_metric(f"m{j}", 0.5 + j + s / 100, step=s)
            for t in range(TAGS):
                mlflow.set_tag(f"tag{t}", f"value{t}")
            for a in range(ARTIFACTS):
                mlflow.log_artifact(str(trials_dir / "baseline" / str(seed) / f"artifact{a}.txt"))
    return time.perf_counter() - started


def main() -> int:
    import contextlib
    import io

    from audit.tracking.server import ManagedServer

    with tempfile.TemporaryDirectory(prefix="mlaudit-bench-") as tmp:
        root = Path(tmp)
        trials_dir = make_trial_dirs(root / "trials")
        server = ManagedServer(
            backend_store_uri=f"mlaudit+sqlite:///{root / 'mlflow.db'}",
            artifacts_destination=str(root / "artifacts"),
            log_path=root / "server.log",
        )
        with server:
            # Both sides start warm: mlflow imported, the server answered once.
            from audit.tracking.client import connect

            connect(server.uri).search_experiments()
            calls = TRIALS * (2 + PARAMS + METRICS * STEPS + TAGS + ARTIFACTS)
            ours = with_mlaudit(server.uri, study("bench-log"), trials_dir, root / "spool")
            with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints a URL per run
                plain = with_fluent(server.uri, trials_dir)
    print(
        f"log {TRIALS} trials ({PARAMS} params, {METRICS}x{STEPS} metric points, {TAGS} tags, "
        f"{ARTIFACTS} artifacts each)"
    )
    print(f"  mlflow fluent, one call per value: {plain:8.2f} s  ({calls} calls)")
    print(f"  mlaudit track log (batched):       {ours:8.2f} s")
    print(f"  ratio: mlaudit is {plain / ours:.1f}x faster (target >= 20x)")
    return 0 if plain / ours >= 20 else 1


if __name__ == "__main__":
    sys.exit(main())
