"""A logged model's served artifacts on `mlaudit server`: written freely, sealed with the run."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import requests

from audit.tracking import record as run_record

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

TIMEOUT = 60


def api(server: Any, path: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any]:
    url = f"{server.uri}/api/2.0/mlflow/{path}"
    response = requests.request(method, url, json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return dict(response.json())


def artifact(server: Any, experiment: str, model_id: str, name: str) -> str:
    path = f"{experiment}/models/{model_id}/artifacts/{name}"
    return f"{server.uri}/api/2.0/mlflow-artifacts/artifacts/{path}"


def test_model_artifacts_are_digested_at_the_seal_and_closed_after_it(mlflow_server: Any) -> None:
    experiment = api(mlflow_server, "experiments/create", {"name": f"m-{uuid.uuid4().hex}"})[
        "experiment_id"
    ]
    run = api(mlflow_server, "runs/create", {"experiment_id": experiment, "start_time": 1})
    run_id = run["run"]["info"]["run_id"]
    model = api(
        mlflow_server,
        "logged-models",
        {"experiment_id": experiment, "name": "clf", "source_run_id": run_id},
    )["model"]["info"]
    model_id = model["model_id"]
    weights = b"weights"
    put = requests.put(
        artifact(mlflow_server, experiment, model_id, "model.bin"), data=weights, timeout=TIMEOUT
    )
    assert put.status_code == 200, put.text
    api(mlflow_server, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 2})

    tags = {
        t["key"]: t["value"]
        for t in api(mlflow_server, f"logged-models/{model_id}", {}, "GET")["model"]["info"].get(
            "tags", []
        )
    }
    manifest = {"model.bin": hashlib.sha256(weights).hexdigest()}
    assert tags[run_record.MODEL_ARTIFACTS_SHA256_TAG] == run_record.artifact_manifest_sha256(
        manifest
    )
    late = requests.put(
        artifact(mlflow_server, experiment, model_id, "late.bin"), data=b"x", timeout=TIMEOUT
    )
    assert late.status_code == 409, late.text
    assert "its artifacts cannot change after the run ends" in late.json()["message"]
    listing = requests.get(
        f"{mlflow_server.uri}/api/2.0/mlflow-artifacts/artifacts",
        params={"path": f"{experiment}/models/{model_id}/artifacts"},
        timeout=TIMEOUT,
    ).json()
    assert [f["path"] for f in listing["files"]] == ["model.bin"]
