"""Helpers for the tracking client, ledger and fault tests: synthetic studies, DB tampering.

The server itself is the session fixture `mlflow_server` (tests/conftest.py); every
test logs into its own experiment so tests never see each other's seals.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest


def make_results(
    edd_id: str | None = None,
    *,
    arms: tuple[str, ...] = ("baseline", "no-a"),
    seeds: tuple[int, ...] = (0, 1),
    history_steps: int = 3,
    metrics: tuple[str, ...] = ("score", "loss"),
    params: int = 0,
) -> dict[str, Any]:
    """A results.json document (schema mlaudit/results/v1) with deterministic values."""
    edd_id = edd_id or f"study-{uuid.uuid4().hex[:10]}"
    baseline: dict[str, Any] = {"features": {"a": True}, "model": {"depth": 3}}
    for i in range(params):
        baseline.setdefault("extra", {})[f"p{i:02d}"] = i
    document = {"id": edd_id, "version": 1, "protocol": {"baseline": baseline}}
    digest = hashlib.sha256(edd_id.encode()).hexdigest()
    plan_arms = [
        {
            "name": arm,
            "kind": "baseline" if arm == "baseline" else "component",
            "component": None if arm == "baseline" else arm.removeprefix("no-"),
            "overrides": [] if arm == "baseline" else [f"features.{arm.removeprefix('no-')}=false"],
        }
        for arm in arms
    ]
    trials = []
    for a, arm in enumerate(arms):
        for seed in seeds:
            value = round(0.5 + 0.01 * a + 0.001 * seed, 6)
            started = datetime(2026, 11, 20, 10, 10, tzinfo=timezone.utc) + timedelta(
                minutes=a * len(seeds) + seed
            )
            stamp = started.isoformat().replace("+00:00", "Z")
            finished = (started + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
            trial: dict[str, Any] = {
                "trial_id": f"{arm}/{seed}",
                "arm": arm,
                "seed": seed,
                "status": "succeeded",
                "metrics": {name: value + i for i, name in enumerate(metrics)},
                "duration_seconds": 30.0,
                "attempts": 1,
                "exit_code": 0,
                "started_at": stamp,
                "finished_at": finished,
            }
            if history_steps:
                trial["metric_history"] = {
                    name: [
                        {
                            "step": s,
                            "value": value + i + s / 100,
                            "timestamp": 1_790_000_000_000 + s,
                        }
                        for s in range(history_steps)
                    ]
                    for i, name in enumerate(metrics)
                }
            trials.append(trial)
    return {
        "schema": "mlaudit/results/v1",
        "edd": {"id": edd_id, "version": 1, "digest": digest, "document": document},
        "plan": {
            "design": "leave-one-out",
            "arms": plan_arms,
            "seeds": list(seeds),
            "command": ["python", "train.py", "{overrides}"],
            "trial_count": len(trials),
            "shard": None,
        },
        "provenance": {
            "git": {"commit": "0" * 40, "tree": "1" * 40, "dirty": False},
            "data": {"data/train.csv": "5d41402abc4b2a76b9719d911017c592"},
            "environment": {"python": "3.11", "platform": "Linux", "image_digest": None},
            "fingerprint": hashlib.sha256(b"code+data+env").hexdigest(),
        },
        "trials": trials,
        "budget": {
            "max_trials": 100,
            "max_wall_minutes": 30,
            "trials_run": len(trials),
            "wall_seconds": 120.0,
            "exhausted": False,
        },
        "created_at": "2026-11-20T10:00:00Z",
        "approvals": [{"principal": "risk@example.com", "role": "model-risk", "verdict": "valid"}],
        "trust": {"ref": "origin/main", "commit": "2" * 40, "protected": True},
    }


@contextlib.contextmanager
def superuser(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Edit the SQLite file as a database superuser would: triggers dropped for the edit.

    Everything happens in one transaction that re-creates the triggers before it
    commits, so other tests sharing the server never see an unguarded database.
    """
    connection = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        saved = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        for name, _ in saved:
            connection.execute(f'DROP TRIGGER "{name}"')
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        for _, sql in saved:
            connection.execute(sql)
        connection.execute("COMMIT")
    finally:
        connection.close()


def seal_tags(connection: sqlite3.Connection, run_id: str) -> dict[str, str]:
    rows = connection.execute(
        "SELECT key, value FROM tags WHERE run_uuid = ? AND key LIKE 'mlaudit.seal.%'", (run_id,)
    )
    return dict(rows.fetchall())


class FlakyProxy:
    """A loopback HTTP proxy in front of the real server that can answer 503 or vanish.

    `fail_next(n)` makes the next n requests fail with 503 (a server-side error);
    `fail_request(k)` makes only the k-th request from now fail with 503;
    `down = True` makes every request fail, like an outage. Otherwise it forwards.
    """

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        import requests

        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()  # history requests arrive from several threads
        self.down = False
        self.failures_left = 0
        self.requests = 0
        self.failing_request: int | None = None
        session = requests.Session()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _relay(self) -> None:
                with proxy.lock:
                    proxy.requests += 1
                    chosen = proxy.requests == proxy.failing_request
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.down or proxy.failures_left > 0 or chosen:
                    proxy.failures_left = max(0, proxy.failures_left - 1)
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = session.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers,
                    timeout=60,
                )  # fmt: skip
                content = answer.content
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "content-encoding"):  # fmt: skip
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, count: int) -> None:
        self.failures_left = count

    def fail_request(self, k: int) -> None:
        self.failing_request = self.requests + k

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def check_one_run_per_key(store: Any) -> None:
    """A run with an idempotency key is created once per experiment, even by racing callers.

    Shared by the SQLite and PostgreSQL store tests: `store` is an AppendOnlyTrackingStore.
    """
    import threading

    from mlflow.entities import RunTag
    from mlflow.exceptions import MlflowException

    from audit.tracking.runspec import EXECUTION_KEY_TAG, ROLE_TAG, TRIAL_KEY_TAG

    experiment = str(store.create_experiment(f"keys-{uuid.uuid4().hex}"))
    execution = uuid.uuid4().hex
    parent = [RunTag(EXECUTION_KEY_TAG, execution), RunTag(ROLE_TAG, "execution")]

    def trial(key: str) -> list[Any]:
        return [
            RunTag(EXECUTION_KEY_TAG, execution),
            RunTag(ROLE_TAG, "trial"),
            RunTag(TRIAL_KEY_TAG, key),
        ]

    first = store.create_run(experiment, "u", 1, parent, "parent").info.run_id
    # Trials share the execution key with their parent: they are not a second parent.
    store.create_run(experiment, "u", 2, trial("t1"), "t1")
    for tags in (parent, trial("t1")):
        with pytest.raises(MlflowException, match="already holds") as caught:
            store.create_run(experiment, "u", 3, tags, "again")
        assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException, match=first):  # names the run to log to instead
        store.create_run(experiment, "u", 3, parent, "again")
    # Another experiment may hold the same keys; runs without keys are never refused.
    other = str(store.create_experiment(f"keys-{uuid.uuid4().hex}"))
    store.create_run(other, "u", 1, parent, "parent")
    store.create_run(other, "u", 1, trial("t1"), "t1")
    store.create_run(experiment, "u", 1, [], "plain")
    store.create_run(experiment, "u", 1, [], "plain")

    # Eight callers create the same trial at once: one run, seven refusals.
    barrier = threading.Barrier(8)
    created: list[str] = []
    refused: list[str] = []
    errors: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            created.append(store.create_run(experiment, "u", 5, trial("race"), "r").info.run_id)
        except MlflowException as error:
            (refused if error.error_code == "RESOURCE_ALREADY_EXISTS" else errors).append(
                str(error)
            )

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(created) == 1
    assert len(refused) == 7

    # Many callers creating different trials at once all get through: keyed creates
    # take two pooled connections each, which must not drain the pool (15 by default).
    distinct = threading.Barrier(32)
    made: list[str] = []

    def create_own(i: int) -> None:
        distinct.wait()
        try:
            made.append(store.create_run(experiment, "u", 6, trial(f"own-{i}"), "o").info.run_id)
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=create_own, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(made)) == 32
