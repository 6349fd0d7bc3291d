"""Benchmark: `track verify` of 1,000 sealed runs via REST, and a Merkle root of 1M leaves.

The runs (10 params, 5 metrics x 10 steps, 5 tags each) are set up in seconds (see
populate), then a real `mlflow server` with the append-only store serves them and
verify refetches everything over HTTP. Side by side: the obvious client loop
(get_run + get_metric_history per run and key), timed on 100 runs and scaled to
1,000. Targets: verify <= 10 s, Merkle root of 1M leaves <= 3 s; exits 1 when one is missed.

    .venv/bin/python bench/tracking_verify.py
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

RUNS = 1000
PARAMS = 10
METRICS = 5
STEPS = 10
TAGS = 5
NAIVE_SAMPLE = 100
LEAVES = 1_000_000


def populate(db_uri: str, artifacts: Path) -> str:
    """One run through the append-only store (sealed by it), 999 clones written straight
    into SQLite with values varied and seals computed by the same record function the
    store uses: an equivalent database in seconds instead of minutes."""
    import sqlite3
    import uuid

    from mlflow.entities import Metric, Param, RunStatus, RunTag

    from audit.tracking import record
    from audit.tracking.store import AppendOnlyTrackingStore

    store = AppendOnlyTrackingStore(db_uri, str(artifacts))
    experiment_id = str(store.create_experiment("bench-verify"))
    start = 1_790_000_000_000
    template = store.create_run(experiment_id, "bench", start, [], "run-0").info.run_id
    store.log_batch(
        template,
        metrics=[
            Metric(f"m{j}", j + s / 100, start + s, s) for j in range(METRICS) for s in range(STEPS)
        ],
        params=[Param(f"p{i:02d}", str(i)) for i in range(PARAMS)],
        tags=[RunTag(f"t{t}", f"v{t}") for t in range(TAGS - 1)],
    )
    store.update_run_info(template, RunStatus.FINISHED, start + 500, None)
    db = sqlite3.connect(db_uri.split(":///", 1)[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    (uri_template,) = db.execute(
        "SELECT artifact_uri FROM runs WHERE run_uuid = ?", (template,)
    ).fetchone()
    for r in range(1, RUNS):
        run_id = uuid.uuid4().hex
        db.execute(
            "INSERT INTO runs SELECT ?, ?, source_type, source_name, entry_point_name, user_id, "
            "status, start_time + ?, end_time + ?, source_version, lifecycle_stage, ?, "
            "experiment_id, deleted_time FROM runs WHERE run_uuid = ?",
            (
                run_id,
                f"run-{r}",
                r * 1000,
                r * 1000,
                uri_template.replace(template, run_id),
                template,
            ),
        )
        db.execute(
            "INSERT INTO params SELECT key, value || ?, ? FROM params WHERE run_uuid = ?",
            (f"-{r}", run_id, template),
        )
        db.execute(
            "INSERT INTO tags SELECT key, CASE WHEN key = 'mlflow.runName' THEN ? "
            "ELSE value END, ? FROM tags WHERE run_uuid = ? AND key NOT LIKE 'mlaudit.seal.%'",
            (f"run-{r}", run_id, template),
        )
        for table in ("metrics", "latest_metrics"):
            db.execute(
                f"INSERT INTO {table} (key, value, timestamp, run_uuid, step, is_nan) "
                "SELECT key, value + ?, timestamp + ?, ?, step, is_nan "
                f"FROM {table} WHERE run_uuid = ?",
                (r, r * 1000, run_id, template),
            )
        digest = record.record_sha256(_record_from_rows(db, run_id))
        db.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
            [(record.SEAL_SEQ_TAG, str(r), run_id), (record.SEAL_SHA256_TAG, digest, run_id)],
        )
        db.execute(
            "INSERT INTO mlaudit_seals (experiment_id, seq, run_id, sha256, sealed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (experiment_id, r, run_id, digest, start),
        )
    db.execute("COMMIT")
    db.close()
    return experiment_id


def _record_from_rows(db: object, run_id: str) -> bytes:
    """The record exactly as the store builds it from its rows (audit/tracking/store.py)."""
    from audit.tracking import record

    query = db.execute  # type: ignore[attr-defined]
    name, status, start, end, artifact_uri, experiment_id = query(
        "SELECT name, status, start_time, end_time, artifact_uri, experiment_id "
        "FROM runs WHERE run_uuid = ?",
        (run_id,),
    ).fetchone()
    history: dict[str, list[tuple[int, int, float]]] = {}
    for key, step, stamp, value, is_nan in query(
        "SELECT key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ?", (run_id,)
    ):
        history.setdefault(key, []).append((step, stamp, float("nan") if is_nan else value))
    return record.canonical_run_record(
        run_id,
        str(experiment_id),
        status,
        start,
        end,
        dict(query("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))),
        {k: v or "" for k, v in query("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))},
        history,
        run_name=name or "",
        artifact_uri=artifact_uri or "",
    )


def naive_fetch(uri: str, run_ids: list[str]) -> float:
    from audit.tracking.client import connect

    client = connect(uri)
    started = time.perf_counter()
    for run_id in run_ids:
        run = client.get_run(run_id)
        for key in run.data.metrics:
            client.get_metric_history(run_id, key)
    return time.perf_counter() - started


def bench_merkle() -> tuple[float, float]:
    from audit.tracking.merkle import merkle_root

    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(LEAVES)]
    started = time.perf_counter()
    root = merkle_root(leaves)
    ours = time.perf_counter() - started

    def recursive(lo: int, hi: int) -> bytes:  # RFC 6962 section 2.1, as written
        if hi - lo == 1:
            return hashlib.sha256(b"\x00" + leaves[lo]).digest()
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + recursive(lo, lo + k) + recursive(lo + k, hi)).digest()

    started = time.perf_counter()
    assert recursive(0, LEAVES) == root
    return ours, time.perf_counter() - started


def main() -> int:
    from audit.tracking.client import connect
    from audit.tracking.ledger import fetch_ledger
    from audit.tracking.ledger_verify import verify_ledger
    from audit.tracking.server import ManagedServer

    with tempfile.TemporaryDirectory(prefix="mlaudit-bench-") as tmp:
        root = Path(tmp)
        db_uri = f"mlaudit+sqlite:///{root / 'mlflow.db'}"
        started = time.perf_counter()
        experiment_id = populate(db_uri, root / "artifacts")
        print(f"set-up: {RUNS} sealed runs written in {time.perf_counter() - started:.1f} s")
        server = ManagedServer(
            backend_store_uri=db_uri,
            artifacts_destination=str(root / "artifacts"),
            log_path=root / "server.log",
            workers=2,  # as the test suite runs it
        )
        with server:
            client = connect(server.uri)
            client.search_experiments()  # warm
            started = time.perf_counter()
            ledger = fetch_ledger(client, server.uri, experiment_id)
            result = verify_ledger(ledger)
            ours = time.perf_counter() - started
            assert result.ok, result.findings[:3]
            assert result.size == RUNS
            sample = [leaf.run_id for leaf in ledger.leaves[:NAIVE_SAMPLE]]
            naive = naive_fetch(server.uri, sample) * RUNS / NAIVE_SAMPLE
    print(f"verify {RUNS} sealed runs ({PARAMS} params, {METRICS}x{STEPS} points, {TAGS} tags)")
    print(f"  per-run REST loop (fetch only, {NAIVE_SAMPLE} runs scaled): {naive:7.2f} s")
    print(f"  mlaudit track verify (fetch + recompute + root):  {ours:7.2f} s  (target <= 10 s)")
    print(f"  ratio: {naive / ours:.1f}x faster")
    merkle, textbook = bench_merkle()
    print(f"Merkle root of {LEAVES:,} leaves")
    print(f"  recursive RFC 6962 transcription: {textbook:6.2f} s")
    print(f"  mlaudit (level by level):         {merkle:6.2f} s  (target <= 3 s)")
    print(f"  ratio: {textbook / merkle:.1f}x faster")
    return 0 if ours <= 10 and merkle <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
