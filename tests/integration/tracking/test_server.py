"""The append-only store behind a real `mlflow server`: each mutating REST endpoint, sealed runs."""

from __future__ import annotations

import hashlib
import http.client
import json
import sqlite3
import threading
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import pytest
import requests

with warnings.catch_warnings():  # MLflow 3.17's ORM uses a loader SQLAlchemy 2.1 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")

from audit.tracking import record as run_record

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

TIMEOUT = 60


def api(server: Any, path: str, body: dict[str, Any] | None = None) -> requests.Response:
    url = f"{server.uri}/api/2.0/mlflow/{path}"
    if body is None:
        return requests.get(url, timeout=TIMEOUT)
    return requests.post(url, json=body, timeout=TIMEOUT)


def ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json())


def artifact_url(server: Any, experiment: str, run_id: str, name: str) -> str:
    return f"{server.uri}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/{name}"


@dataclass
class SealedRun:
    experiment: str
    run_id: str
    seq: int
    sha256: str


def new_experiment(server: Any) -> str:
    name = f"exp-{uuid.uuid4().hex}"
    return str(ok(api(server, "experiments/create", {"name": name}))["experiment_id"])


def new_run(server: Any, experiment: str) -> str:
    body = {"experiment_id": experiment, "start_time": 1_000, "run_name": "trial"}
    return str(ok(api(server, "runs/create", body))["run"]["info"]["run_id"])


def seal(server: Any, run_id: str, status: str = "FINISHED") -> dict[str, Any]:
    body = {"run_id": run_id, "status": status, "end_time": 2_000}
    return ok(api(server, "runs/update", body))


def make_sealed_run(server: Any) -> SealedRun:
    experiment = new_experiment(server)
    run_id = new_run(server, experiment)
    ok(
        api(
            server,
            "runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": "lr", "value": "0.1"}],
                "metrics": [
                    {"key": "loss", "value": 0.5, "timestamp": 10, "step": 0},
                    {"key": "loss", "value": 0.25, "timestamp": 11, "step": 1},
                ],
                "tags": [{"key": "arm", "value": "baseline"}],
            },
        )
    )
    model = b"weights"
    response = requests.put(
        artifact_url(server, experiment, run_id, "model.bin"), data=model, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    manifest = json.dumps({"model.bin": hashlib.sha256(model).hexdigest()}).encode()
    response = requests.put(
        artifact_url(server, experiment, run_id, run_record.ARTIFACT_MANIFEST_PATH),
        data=manifest,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    digest = hashlib.sha256(manifest).hexdigest()
    tag = {"run_id": run_id, "key": run_record.ARTIFACTS_SHA256_TAG, "value": digest}
    ok(api(server, "runs/set-tag", tag))
    seal(server, run_id)
    tags = {t["key"]: t["value"] for t in run_json(server, run_id)["data"]["tags"]}
    return SealedRun(
        experiment,
        run_id,
        int(tags[run_record.SEAL_SEQ_TAG]),
        tags[run_record.SEAL_SHA256_TAG],
    )


def run_json(server: Any, run_id: str) -> dict[str, Any]:
    return dict(ok(api(server, f"runs/get?run_id={run_id}"))["run"])


def snapshot(server: Any, sealed: SealedRun) -> dict[str, Any]:
    """Everything a change could touch: the run, full histories, the artifact files."""
    run = run_json(server, sealed.run_id)
    histories = {
        m["key"]: ok(
            api(server, f"metrics/get-history?run_id={sealed.run_id}&metric_key={m['key']}")
        )
        for m in run["data"].get("metrics", [])
    }
    listing = requests.get(
        f"{server.uri}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": f"{sealed.experiment}/{sealed.run_id}/artifacts"},
        timeout=TIMEOUT,
    ).json()
    model = requests.get(
        artifact_url(server, sealed.experiment, sealed.run_id, "model.bin"), timeout=TIMEOUT
    ).content
    experiment = ok(api(server, f"experiments/get?experiment_id={sealed.experiment}"))
    return {
        "run": run,
        "histories": histories,
        "listing": listing,
        "model": model,
        "exp": experiment,
    }


def recomputed_sha256(server: Any, run_id: str) -> str:
    """What `track verify` does: rebuild the record from REST data alone."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server.uri)
    run = client.get_run(run_id)
    history = {key: client.get_metric_history(run_id, key) for key in run.data.metrics}
    return run_record.record_sha256(
        run_record.record_bytes(run_record.record_input_from_run(run, history))
    )


@pytest.fixture
def sealed(mlflow_server: Any) -> SealedRun:
    return make_sealed_run(mlflow_server)


def test_ending_a_run_seals_it_and_rest_data_recomputes_the_seal(
    mlflow_server: Any, sealed: SealedRun
) -> None:
    assert sealed.seq == 0  # first run of a fresh experiment
    assert recomputed_sha256(mlflow_server, sealed.run_id) == sealed.sha256
    with sqlite3.connect(mlflow_server.db_path) as db:
        row = db.execute(
            "SELECT experiment_id, seq, sha256 FROM mlaudit_seals WHERE run_id = ?",
            (sealed.run_id,),
        ).fetchone()
    assert row == (sealed.experiment, 0, sealed.sha256)


# Every mutating REST endpoint that can name a run, aimed at a sealed one.
RUN_ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "update-finish-again": ("runs/update", {"status": "FAILED", "end_time": 3_000}),
    "update-reopen": ("runs/update", {"status": "RUNNING"}),
    "update-rename": ("runs/update", {"run_name": "renamed"}),
    "delete": ("runs/delete", {}),
    "restore": ("runs/restore", {}),
    "log-metric": ("runs/log-metric", {"key": "loss", "value": 9.0, "timestamp": 99, "step": 9}),
    "log-parameter": ("runs/log-parameter", {"key": "late", "value": "1"}),
    "set-tag": ("runs/set-tag", {"key": "late", "value": "1"}),
    "set-tag-run-name": ("runs/set-tag", {"key": "mlflow.runName", "value": "renamed"}),
    "set-tag-seal": ("runs/set-tag", {"key": run_record.SEAL_SHA256_TAG, "value": "0" * 64}),
    "delete-tag": ("runs/delete-tag", {"key": "arm"}),
    "log-batch": (
        "runs/log-batch",
        {"params": [{"key": "late", "value": "1"}], "tags": [{"key": "late", "value": "1"}]},
    ),
    "log-inputs": (
        "runs/log-inputs",
        {
            "datasets": [
                {
                    "dataset": {
                        "name": "late",
                        "digest": "abc",
                        "source_type": "local",
                        "source": "file:///late",
                    }
                }
            ]
        },
    ),
    "outputs": ("runs/outputs", {"models": []}),
    "log-model": (
        "runs/log-model",
        {
            "model_json": json.dumps(
                {
                    "artifact_path": "model",
                    "flavors": {"python_function": {}},
                    "utc_time_created": "2026-01-01 00:00:00.000000",
                    "run_id": "RUN",
                }
            )
        },
    ),
    "link-traces": ("traces/link-to-run", {"trace_ids": ["tr-0123456789"]}),
}


@pytest.mark.parametrize("endpoint", sorted(RUN_ENDPOINTS))
def test_every_mutating_run_endpoint_is_refused_on_a_sealed_run(
    mlflow_server: Any, sealed: SealedRun, endpoint: str
) -> None:
    path, body = RUN_ENDPOINTS[endpoint]
    body = json.loads(json.dumps(body).replace('"RUN"', json.dumps(sealed.run_id)))
    before = snapshot(mlflow_server, sealed)
    response = api(mlflow_server, path, {"run_id": sealed.run_id, **body})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()
    assert error["error_code"] == "RESOURCE_CONFLICT", error
    assert "this run is sealed" in error["message"] or "append-only" in error["message"]
    assert snapshot(mlflow_server, sealed) == before
    assert recomputed_sha256(mlflow_server, sealed.run_id) == sealed.sha256


@pytest.mark.parametrize("endpoint", sorted(RUN_ENDPOINTS))
def test_refusals_on_sealed_runs_name_the_seal(
    mlflow_server: Any, sealed: SealedRun, endpoint: str
) -> None:
    path, body = RUN_ENDPOINTS[endpoint]
    body = json.loads(json.dumps(body).replace('"RUN"', json.dumps(sealed.run_id)))
    message = api(mlflow_server, path, {"run_id": sealed.run_id, **body}).json()["message"]
    expected = f"this run is sealed (experiment {sealed.experiment}, sequence {sealed.seq}): "
    assert expected in message
    assert sealed.sha256 not in message


ARTIFACT_WRITES = {
    "overwrite": ("PUT", "model.bin"),
    "add-after-seal": ("PUT", "late.txt"),
    "delete-file": ("DELETE", "model.bin"),
    "replace-manifest": ("PUT", run_record.ARTIFACT_MANIFEST_PATH),
}


@pytest.mark.parametrize("operation", sorted(ARTIFACT_WRITES))
def test_served_artifacts_of_a_sealed_run_cannot_change(
    mlflow_server: Any, sealed: SealedRun, operation: str
) -> None:
    method, name = ARTIFACT_WRITES[operation]
    before = snapshot(mlflow_server, sealed)
    url = artifact_url(mlflow_server, sealed.experiment, sealed.run_id, name)
    response = requests.request(method, url, data=b"tampered", timeout=TIMEOUT)
    assert response.status_code == 409, response.text
    assert "mlaudit: " in response.json()["message"]
    assert snapshot(mlflow_server, sealed) == before


def test_multipart_uploads_are_refused_cleanly(mlflow_server: Any, sealed: SealedRun) -> None:
    path = f"{sealed.experiment}/{sealed.run_id}/artifacts/big.bin"
    response = requests.post(
        f"{mlflow_server.uri}/api/2.0/mlflow-artifacts/mpu/create/{path}",
        json={"path": path, "num_parts": 1},
        timeout=TIMEOUT,
    )
    assert response.status_code == 409, response.text


def test_artifacts_of_an_open_run_are_write_once(mlflow_server: Any) -> None:
    experiment = new_experiment(mlflow_server)
    run_id = new_run(mlflow_server, experiment)
    url = artifact_url(mlflow_server, experiment, run_id, "a.txt")
    assert requests.put(url, data=b"first", timeout=TIMEOUT).status_code == 200
    assert requests.put(url, data=b"second", timeout=TIMEOUT).status_code == 409
    assert requests.delete(url, timeout=TIMEOUT).status_code == 409
    assert requests.get(url, timeout=TIMEOUT).content == b"first"


EXPERIMENT_ENDPOINTS: dict[str, dict[str, Any]] = {
    "experiments/delete": {},
    "experiments/restore": {},
    "experiments/update": {"new_name": "renamed"},
}


@pytest.mark.parametrize("path", sorted(EXPERIMENT_ENDPOINTS))
def test_experiment_changes_are_refused_always(mlflow_server: Any, path: str) -> None:
    experiment = new_experiment(mlflow_server)
    before = ok(api(mlflow_server, f"experiments/get?experiment_id={experiment}"))
    body = {"experiment_id": experiment, **EXPERIMENT_ENDPOINTS[path]}
    response = api(mlflow_server, path, body)
    assert response.status_code == 409, response.text
    assert "append-only" in response.json()["message"]
    assert ok(api(mlflow_server, f"experiments/get?experiment_id={experiment}")) == before


@pytest.mark.parametrize("path", ["runs/delete", "runs/restore"])
def test_run_deletes_are_refused_even_while_open(mlflow_server: Any, path: str) -> None:
    run_id = new_run(mlflow_server, new_experiment(mlflow_server))
    response = api(mlflow_server, path, {"run_id": run_id, "key": "mlflow.runName"})
    assert response.status_code == 409, response.text
    run = run_json(mlflow_server, run_id)
    assert run["info"]["lifecycle_stage"] == "active"
    assert any(t["key"] == "mlflow.runName" for t in run["data"]["tags"])


def test_other_writes_mlflow_offers_are_refused(mlflow_server: Any) -> None:
    experiment = new_experiment(mlflow_server)
    response = api(mlflow_server, "logged-models", {"experiment_id": experiment, "name": "m"})
    assert response.status_code == 409, response.text


def test_the_ui_and_its_ajax_api_keep_working(mlflow_server: Any, sealed: SealedRun) -> None:
    page = requests.get(f"{mlflow_server.uri}/", timeout=TIMEOUT)
    assert page.status_code == 200
    assert "<html" in page.text.lower()
    search = requests.post(
        f"{mlflow_server.uri}/ajax-api/2.0/mlflow/runs/search",
        json={"experiment_ids": [sealed.experiment]},
        timeout=TIMEOUT,
    )
    assert search.status_code == 200, search.text
    [run] = search.json()["runs"]
    assert run["info"]["run_id"] == sealed.run_id
    experiments = requests.post(
        f"{mlflow_server.uri}/ajax-api/2.0/mlflow/experiments/search",
        json={"max_results": 10},
        timeout=TIMEOUT,
    )
    assert experiments.status_code == 200, experiments.text


def test_mlflows_host_and_origin_guards_stay_on(mlflow_server: Any) -> None:
    """Served by gunicorn (the Flask app alone), MLflow's DNS-rebinding and CSRF guards hold."""
    url = f"{mlflow_server.uri}/api/2.0/mlflow/experiments/create"
    body = {"name": f"exp-{uuid.uuid4().hex}"}
    rebound = requests.post(url, json=body, headers={"Host": "evil.example"}, timeout=TIMEOUT)
    assert rebound.status_code == 403, rebound.text
    cross = requests.post(
        url, json=body, headers={"Origin": "https://evil.example"}, timeout=TIMEOUT
    )
    assert cross.status_code == 403, cross.text
    assert ok(requests.post(url, json=body, timeout=TIMEOUT))["experiment_id"]


def test_a_kept_alive_connection_is_closed_after_a_few_requests(mlflow_server: Any) -> None:
    """So a busy logger reconnects and lands on whichever worker is free (gunicorn_hooks)."""
    from urllib.parse import urlsplit

    from audit.tracking.gunicorn_hooks import KEEPALIVE_REQUESTS

    where = urlsplit(mlflow_server.uri)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=TIMEOUT)
    closes = []
    try:
        for _ in range(KEEPALIVE_REQUESTS):
            connection.request("GET", "/health")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            closes.append(response.getheader("Connection", "").lower() == "close")
    finally:
        connection.close()
    assert closes == [False] * (KEEPALIVE_REQUESTS - 1) + [True]


@pytest.mark.slow
def test_concurrent_writers_get_contiguous_seals(mlflow_server: Any) -> None:
    experiment = new_experiment(mlflow_server)
    writers, runs_each = 8, 50
    failures: list[str] = []

    def writer(index: int) -> None:
        session = requests.Session()
        base = f"{mlflow_server.uri}/api/2.0/mlflow"
        try:
            for n in range(runs_each):
                created = session.post(
                    f"{base}/runs/create",
                    json={"experiment_id": experiment, "start_time": n, "run_name": f"w{index}"},
                    timeout=TIMEOUT,
                )
                run_id = created.json()["run"]["info"]["run_id"]
                metrics = [{"key": "m", "value": float(n), "timestamp": n, "step": 0}]
                logged = session.post(
                    f"{base}/runs/log-batch",
                    json={"run_id": run_id, "metrics": metrics},
                    timeout=TIMEOUT,
                )
                ended = session.post(
                    f"{base}/runs/update",
                    json={"run_id": run_id, "status": "FINISHED", "end_time": n + 1},
                    timeout=TIMEOUT,
                )
                for response in (created, logged, ended):
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
        except Exception as error:
            failures.append(repr(error))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with sqlite3.connect(mlflow_server.db_path) as db:
        seqs = [
            row[0]
            for row in db.execute(
                "SELECT seq FROM mlaudit_seals WHERE experiment_id = ? ORDER BY seq", (experiment,)
            )
        ]
        tagged = dict(
            db.execute(
                "SELECT t.run_uuid, t.value FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
                "WHERE r.experiment_id = ? AND t.key = ?",
                (int(experiment), run_record.SEAL_SEQ_TAG),
            ).fetchall()
        )
    assert seqs == list(range(writers * runs_each))
    assert sorted(int(v) for v in tagged.values()) == seqs
