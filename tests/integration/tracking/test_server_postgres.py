"""A real `mlflow server` on PostgreSQL through `mlaudit+postgresql` (skips without a server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audit.tracking import record as run_record
from audit.tracking.server import ManagedServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TIMEOUT = 60


@pytest.fixture(scope="module")
def pg_server(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    root: Path = tmp_path_factory.mktemp("pg-server")
    server = ManagedServer(
        backend_store_uri=f"mlaudit+{postgres_uri}",
        artifacts_destination=str(root / "artifacts"),
        workers=2,
        log_path=root / "mlflow-server.log",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_postgres_server_seals_and_refuses_over_rest(pg_server: ManagedServer) -> None:
    base = f"{pg_server.uri}/api/2.0/mlflow"
    experiment = requests.post(
        f"{base}/experiments/create", json={"name": f"pg-{uuid.uuid4().hex}"}, timeout=TIMEOUT
    ).json()["experiment_id"]
    sealed = []
    for n in range(3):
        run_id = requests.post(
            f"{base}/runs/create",
            json={"experiment_id": experiment, "start_time": n},
            timeout=TIMEOUT,
        ).json()["run"]["info"]["run_id"]
        metric = {"key": "m", "value": float(n), "timestamp": n, "step": 0}
        logged = requests.post(
            f"{base}/runs/log-batch", json={"run_id": run_id, "metrics": [metric]}, timeout=TIMEOUT
        )
        assert logged.status_code == 200, logged.text
        ended = requests.post(
            f"{base}/runs/update",
            json={"run_id": run_id, "status": "FINISHED", "end_time": n + 1},
            timeout=TIMEOUT,
        )
        assert ended.status_code == 200, ended.text
        sealed.append(run_id)
    seqs = []
    for run_id in sealed:
        run = requests.get(f"{base}/runs/get", params={"run_id": run_id}, timeout=TIMEOUT).json()
        tags = {t["key"]: t["value"] for t in run["run"]["data"]["tags"]}
        seqs.append(int(tags[run_record.SEAL_SEQ_TAG]))
        late = requests.post(
            f"{base}/runs/log-parameter",
            json={"run_id": run_id, "key": "late", "value": "1"},
            timeout=TIMEOUT,
        )
        assert late.status_code == 409, late.text
        assert f"sequence {tags[run_record.SEAL_SEQ_TAG]})" in late.json()["message"]
    assert seqs == [0, 1, 2]
    deleted = requests.post(
        f"{base}/experiments/delete", json={"experiment_id": experiment}, timeout=TIMEOUT
    )
    assert deleted.status_code == 409, deleted.text


def test_the_database_password_is_not_on_the_command_line(pg_server: ManagedServer) -> None:
    assert pg_server.process is not None
    argv = Path(f"/proc/{pg_server.process.pid}/cmdline").read_bytes()
    assert b"postgresql" not in argv  # the URI (and its password) travels in the environment
