"""Writing runs through the tracking server's REST JSON API with `requests` alone.

`ablate run --tracking-uri` logs every trial as it finishes, in the process that
schedules the trials: importing MLflow's client there (mlflow, pandas, fastapi: over
a second of CPU) and its per-request machinery is taken from the trials themselves.
`RestTracking` speaks the few endpoints a RunWriter needs (experiments, runs/create,
search, log-batch, log-inputs, update, set-tag, and the server's proxied artifacts)
with the method names and answers of MlflowClient that audit.tracking.client uses,
so the writer's logic stays one. It is used only where RestClient is (a plain
http(s) server, none of MLflow's connection settings); otherwise MLflow's own client.
"""

from __future__ import annotations

import math
import mimetypes
import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from audit.tracking.ledger import RestRun
from audit.tracking.rest import RestClient

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


class KeyValue(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> Any: ...


class PointLike(KeyValue, Protocol):
    @property
    def timestamp(self) -> int: ...
    @property
    def step(self) -> int: ...


@dataclass(frozen=True)
class Experiment:
    experiment_id: str


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_dir: bool


class RunPage(list[RestRun]):
    """One page of runs/search, with MLflow's `token` for the next one."""

    token: str | None = None


def _number(value: float) -> float | str:
    # Protobuf's JSON mapping, as MLflow's client sends them: JSON has no NaN/Infinity.
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _pairs(items: Iterable[KeyValue]) -> list[dict[str, str]]:
    return [{"key": item.key, "value": str(item.value)} for item in items]


class RestTracking(RestClient):
    """The MlflowClient calls of a RunWriter, as JSON requests (errors as `requests` raises)."""

    @property
    def tracking_uri(self) -> str:
        return self.uri

    # -- experiments ------------------------------------------------------------------
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        import requests

        try:
            answer = self.call(f"{API}/experiments/get-by-name", params={"experiment_name": name})
        except requests.HTTPError as error:
            if error_code(error) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return Experiment(str(answer["experiment"]["experiment_id"]))

    def create_experiment(self, name: str) -> str:
        return str(
            self.call(f"{API}/experiments/create", "POST", json={"name": name})["experiment_id"]
        )

    # -- runs -------------------------------------------------------------------------
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: Any = "ALL",
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunPage:
        body: dict[str, Any] = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string,
            "run_view_type": str(run_view_type),
            "max_results": max_results,
        }
        if page_token:
            body["page_token"] = page_token
        answer = self.call(f"{API}/runs/search", "POST", json=body)
        page = RunPage(RestRun.from_json(run) for run in answer.get("runs") or [])
        page.token = answer.get("next_page_token") or None
        return page

    def get_run(self, run_id: str) -> RestRun:
        return RestRun.from_json(self.call(f"{API}/runs/get", params={"run_id": run_id})["run"])

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, str] | None = None,
        run_name: str | None = None,
    ) -> RestRun:
        tags = dict(tags or {})
        body: dict[str, Any] = {
            "experiment_id": str(experiment_id),
            # As MlflowClient.create_run: the deprecated user_id follows the mlflow.user tag.
            "user_id": tags.get("mlflow.user", "unknown"),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
        }
        if start_time is not None:
            body["start_time"] = start_time
        if run_name is not None:
            body["run_name"] = run_name
        return RestRun.from_json(self.call(f"{API}/runs/create", "POST", json=body)["run"])

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[PointLike] = (),
        params: Sequence[KeyValue] = (),
        tags: Sequence[KeyValue] = (),
        synchronous: bool = True,
    ) -> None:
        body = {
            "run_id": run_id,
            "metrics": [
                {
                    "key": m.key,
                    "value": _number(float(m.value)),
                    "timestamp": int(m.timestamp),
                    "step": int(m.step),
                }
                for m in metrics
            ],
            "params": _pairs(params),
            "tags": _pairs(tags),
        }
        self.call(f"{API}/runs/log-batch", "POST", json=body)

    def log_inputs(self, run_id: str, datasets: Sequence[Any]) -> None:
        body = {
            "run_id": run_id,
            "datasets": [
                {
                    "tags": _pairs(item.tags),
                    "dataset": {
                        "name": item.dataset.name,
                        "digest": item.dataset.digest,
                        "source_type": item.dataset.source_type,
                        "source": item.dataset.source,
                    },
                }
                for item in datasets
            ],
        }
        self.call(f"{API}/runs/log-inputs", "POST", json=body)

    def update_run(self, run_id: str, status: str, end_time: int) -> None:
        body = {"run_id": run_id, "status": status, "end_time": end_time}
        self.call(f"{API}/runs/update", "POST", json=body)

    # -- artifacts ----------------------------------------------------------------------
    def artifacts(self, artifact_uri: str) -> RestArtifacts | None:
        """The run's artifacts through this server's proxy; None for any other store."""
        parts = urlsplit(artifact_uri)
        if parts.scheme != "mlflow-artifacts" or parts.netloc:
            return None
        return RestArtifacts(self, parts.path.strip("/"))


class RestArtifacts:
    """The methods of MLflow's artifact repository a RunWriter uses, for `mlflow-artifacts:/`."""

    def __init__(self, client: RestTracking, root: str) -> None:
        self.client, self.root = client, root

    def _url(self, path: str) -> str:
        return f"{self.client.uri}{ARTIFACTS_API}/{quote(posixpath.join(self.root, path))}"

    def log_artifact(self, local_file: str, artifact_path: str | None = None) -> None:
        name = os.path.basename(local_file)
        path = posixpath.join(artifact_path, name) if artifact_path else name
        self.log_bytes(Path(local_file).read_bytes(), path)

    def log_bytes(self, data: bytes, path: str) -> None:
        """PUT `data` as the artifact at `path` (no local file needed)."""
        mime = mimetypes.guess_type(posixpath.basename(path))[0] or "application/octet-stream"
        response = self.client._session.put(
            self._url(path), data=data, headers={"Content-Type": mime}, timeout=self.client._timeout
        )
        response.raise_for_status()

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        where = posixpath.join(self.root, path) if path else self.root
        answer = self.client.call(ARTIFACTS_API, params={"path": where})
        found = [
            FileInfo(posixpath.join(path, f["path"]) if path else f["path"], bool(f["is_dir"]))
            for f in answer.get("files") or []
        ]
        return sorted(found, key=lambda f: f.path)

    def download_artifacts(self, path: str, dst_path: str) -> str:
        response = self.client._session.get(self._url(path), timeout=self.client._timeout)
        response.raise_for_status()
        local = Path(dst_path) / posixpath.basename(path)
        local.write_bytes(response.content)
        return str(local)


def error_code(error: BaseException) -> str | None:
    """MLflow's error code of a refusal: MlflowException's, or the REST answer's JSON."""
    code = getattr(error, "error_code", None)
    if isinstance(code, str):
        return code
    response = getattr(error, "response", None)
    if response is None:
        return None
    try:
        answer = response.json()
    except ValueError:
        return None
    return str(answer.get("error_code")) if isinstance(answer, dict) else None


def error_message(error: BaseException) -> str:
    message = getattr(error, "message", None)
    if isinstance(message, str):
        return message
    response = getattr(error, "response", None)
    if response is not None:
        try:
            answer = response.json()
        except ValueError:
            return str(error)
        if isinstance(answer, dict) and answer.get("message"):
            return str(answer["message"])
    return str(error)
