"""Benchmark: a study-sized `mlaudit server`: shard loggers sealing trials side by side.

SHARDS separate processes (as CI shards are) each log and seal their slice of TRIALS
trials (METRICS x STEPS metric points, PARAMS params each, no artifacts besides the
manifest every trial carries) into one real `mlaudit server`, through the same
ProtocolLogger `ablate run --shard` uses. Then the parent run is ended the way the
merged `track log` ends it, and `mlaudit track verify` refetches every sealed run:
the seals must be contiguous (0..TRIALS) and verify must pass.

Runs on SQLite and on PostgreSQL (the database the tests use: role `mlaudit` with
CREATEDB, see tests/tools/system-deps.sh, or MLAUDIT_TEST_POSTGRES_URI); a fresh
database is created and dropped. Prints wall time and trials/s for the shards (their
imports are done before the clock starts). Target: 10,000 trials from 50 shards in
<= 5 minutes on PostgreSQL; a missed target exits 1 (checked at the full size only).

    .venv/bin/python bench/tracking_scale.py                      # 10,000 trials, 50 shards
    .venv/bin/python bench/tracking_scale.py --trials 1000 --shards 10 --backend sqlite
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

FULL_TRIALS = 10_000
FULL_SHARDS = 50
TARGET_SECONDS = 300.0  # PostgreSQL, at the full size
POSTGRES_URI_ENV = "MLAUDIT_TEST_POSTGRES_URI"
DEFAULT_POSTGRES_URI = "postgresql://mlaudit:mlaudit@127.0.0.1:5432/postgres"
STAMP = 1_790_000_000_000


@dataclass(frozen=True)
class Size:
    trials: int
    shards: int
    metrics: int
    steps: int
    params: int


def header(size: Size, edd_id: str) -> dict[str, Any]:
    """results.json without trials: ARMS x seeds, `params - 2` config keys (+ arm, seed)."""
    baseline = {f"k{i:02d}": i for i in range(size.params - 2)}
    arms = [{"name": "baseline", "kind": "baseline", "overrides": []}]
    arms += [
        {"name": f"no_k{a:02d}", "kind": "ablation", "component": f"k{a:02d}",
         "overrides": [f"k{a:02d}={-a}"]}
        for a in range(min(9, size.params - 2))
    ]  # fmt: skip
    seeds = -(-size.trials // len(arms))
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
            "arms": arms,
            "seeds": list(range(seeds)),
            "command": ["python", "train.py"],
            "trial_count": size.trials,
            "shard": None,
        },
        "provenance": {"git": {"commit": "0" * 40}, "fingerprint": "f" * 64},
        "created_at": "2026-11-20T12:00:00Z",
    }


def trials(size: Size, head: dict[str, Any]) -> list[dict[str, Any]]:
    arms = [arm["name"] for arm in head["plan"]["arms"]]
    out = []
    for n in range(size.trials):
        arm, seed = arms[n % len(arms)], n // len(arms)
        out.append(
            {
                "trial_id": f"{arm}/{seed}",
                "arm": arm,
                "seed": seed,
                "status": "succeeded",
                "metrics": {f"m{j}": 0.5 + j + n / 1e5 for j in range(size.metrics)},
                "metric_history": {
                    f"m{j}": [
                        {"step": s, "value": 0.5 + j + s / 100 + n / 1e5, "timestamp": STAMP + s}
                        for s in range(size.steps)
                    ]
                    for j in range(size.metrics)
                },
                "started_at": "2026-11-20T10:00:00Z",
                "finished_at": "2026-11-20T10:00:30Z",
                "shard": None,
            }
        )
    return out


def shard_logger(
    uri: str,
    head: dict[str, Any],
    mine: list[dict[str, Any]],
    label: str,
    barrier: Any,
    done: Any,
) -> None:
    """One CI shard's logger: imports first, then (after the barrier) logs and seals;
    it exits after the second barrier, once every shard has logged."""
    from audit.tracking.client import ProtocolLogger, connect

    connect(uri)  # mlflow imported and configured before the clock starts
    shard_head = {**head, "plan": {**head["plan"], "shard": label}}
    logger = ProtocolLogger(uri, shard_head, spool_dir=None)
    barrier.wait()
    started = time.perf_counter()
    for trial in mine:
        logger.log_trial({**trial, "shard": label})
    summary = logger.close()  # a shard never ends the parent
    done.put((label, len(summary.created), time.perf_counter() - started))
    # Exiting costs a shard about 0.25 s of CPU (the interpreter's finalisation after
    # MLflow's imports). CI shards exit on their own runners, so, like their imports, it
    # stays off the clock: nobody exits before the last shard has logged.
    barrier.wait()


def run_shards(uri: str, size: Size, head: dict[str, Any], all_trials: list[Any]) -> float:
    """Start the shard processes, release them together, wait for all; the wall seconds."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(size.shards + 1)
    done = context.Queue()
    processes = []
    for index in range(size.shards):
        label = f"{index + 1}/{size.shards}"
        mine = all_trials[index :: size.shards]
        process = context.Process(
            target=shard_logger, args=(uri, head, mine, label, barrier, done), daemon=True
        )
        process.start()
        processes.append(process)
    barrier.wait(timeout=600)
    started = time.perf_counter()
    created = 0
    for _ in processes:
        _label, count, _seconds = done.get(timeout=3600)
        created += count
    elapsed = time.perf_counter() - started
    barrier.wait(timeout=600)  # the shards may exit now
    for process in processes:
        process.join(timeout=60)
        if process.exitcode != 0:
            raise SystemExit(f"a shard logger exited with {process.exitcode}")
    if created != size.trials:
        raise SystemExit(f"shards created {created} runs, expected {size.trials}")
    return elapsed


def end_parent(uri: str, head: dict[str, Any], all_trials: list[Any], spool: Path) -> float:
    """What the merged `track log` finishes with: the parent run, ended with the results."""
    from audit.tracking.client import ProtocolLogger

    started = time.perf_counter()
    logger = ProtocolLogger(uri, head, spool_dir=spool)
    summary = logger.close({**head, "trials": all_trials})
    if summary.parent_run_id is None or summary.spooled:
        raise SystemExit(f"the parent run was not ended: {summary.to_json()}")
    return time.perf_counter() - started


def verify(uri: str, experiment: str, expected: int) -> float:
    """`mlaudit track verify` as a user runs it; seals must be 0..expected-1, no findings."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "audit", "track", "verify", "--tracking-uri", uri,
         "--experiment", experiment, "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"track verify failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout)
    if not result.get("ok") or result.get("size") != expected:
        raise SystemExit(f"track verify: expected {expected} contiguous seals, got {result}")
    return elapsed


@contextmanager
def sqlite_backend(root: Path) -> Iterator[str]:
    yield f"mlaudit+sqlite:///{root / 'mlflow.db'}"


@contextmanager
def postgres_backend(base: str) -> Iterator[str]:
    import psycopg

    admin = psycopg.connect(base, connect_timeout=3, autocommit=True)
    name = f"mlaudit_bench_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    prefix, _, _ = base.rpartition("/")
    try:
        yield f"mlaudit+{prefix}/{name}"
    finally:
        drop_database(admin, name)
        admin.close()


def drop_database(admin: Any, name: str, attempts: int = 5) -> None:
    """DROP ... WITH (FORCE), retried: it fails while an autovacuum worker (another role's
    process, which this role may not end) is still in the new database."""
    import psycopg

    for attempt in range(1, attempts + 1):
        try:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            return
        except psycopg.errors.InsufficientPrivilege as error:
            if attempt == attempts:
                print(f"  could not drop the bench database {name}: {error}", file=sys.stderr)
                return
            time.sleep(1.0 * attempt)


def postgres_available(base: str) -> str | None:
    """None when a PostgreSQL server answers at `base`, else why not."""
    try:
        import psycopg

        psycopg.connect(base, connect_timeout=3).close()
    except Exception as error:  # any failure means: skip, saying why
        return str(error).strip().splitlines()[0]
    return None


def measure(backend: str, store_uri: str, root: Path, size: Size, workers: int | None) -> float:
    from audit.tracking.server import ManagedServer

    head = header(size, f"bench-scale-{backend}")
    all_trials = trials(size, head)
    server = ManagedServer(
        backend_store_uri=store_uri,
        artifacts_destination=str(root / "artifacts"),
        workers=workers,
        log_path=root / f"server-{backend}.log",
    )
    with server:
        shards = run_shards(server.uri, size, head, all_trials)
        parent = end_parent(server.uri, head, all_trials, root / "spool")
        checked = verify(server.uri, head["edd"]["id"], size.trials + 1)
    print(
        f"  {backend:10s} {size.trials} trials from {size.shards} shards, "
        f"{server.processes} server worker(s): {shards:7.1f} s, "
        f"{size.trials / shards:6.1f} trials/s  (parent end {parent:.1f} s, "
        f"track verify {checked:.1f} s: OK, {size.trials + 1} contiguous seals)"
    )
    return shards


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=FULL_TRIALS)
    parser.add_argument("--shards", type=int, default=FULL_SHARDS)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument(
        "--workers", type=int, help="server workers (default: the server's for the store)"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    postgres = os.environ.get(POSTGRES_URI_ENV, DEFAULT_POSTGRES_URI)
    parser.add_argument("--postgres-uri", default=postgres)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    size = Size(args.trials, args.shards, args.metrics, args.steps, args.params)
    workers = args.workers  # None: the server's default for the store
    print(
        f"tracking scale: {size.trials} trials ({size.params} params, {size.metrics}x"
        f"{size.steps} metric points each) from {size.shards} shard processes, "
        f"{os.cpu_count()} cores"
    )
    status = 0
    for backend in ("sqlite", "postgresql"):
        if args.backend not in (backend, "both"):
            continue
        with tempfile.TemporaryDirectory(prefix="mlaudit-bench-scale-") as tmp:
            root = Path(tmp)
            if backend == "sqlite":
                with sqlite_backend(root) as uri:
                    measure(backend, uri, root, size, workers)
                continue
            full = size.trials >= FULL_TRIALS and size.shards >= FULL_SHARDS
            missing = postgres_available(args.postgres_uri)
            if missing is not None:
                print(f"  postgresql skipped: no server at the test URI ({missing})")
                if full:  # the target is PostgreSQL's: unmeasured is not met
                    print(f"  target: <= {TARGET_SECONDS:.0f} s on PostgreSQL: NOT MEASURED")
                    status = 1
                continue
            with postgres_backend(args.postgres_uri) as uri:
                seconds = measure(backend, uri, root, size, workers)
            if full:
                verdict = "met" if seconds <= TARGET_SECONDS else "MISSED"
                print(f"  target: <= {TARGET_SECONDS:.0f} s on PostgreSQL: {verdict}")
                status |= int(seconds > TARGET_SECONDS)
    return status


if __name__ == "__main__":
    sys.exit(main())
