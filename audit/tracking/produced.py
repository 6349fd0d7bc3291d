"""What a run produced beyond its own rows: its logged models and its linked traces.

Two readers that must agree: `from_session` (the store, inside the sealing
transaction) and `from_rest` (verify, through the MLflow client only). Both hand
`record.py` the same `LoggedModel` entities and trace ids. Never writes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from audit.tracking import record as run_record

SOURCE_RUN_KEY = "mlflow.sourceRun"  # TraceMetadataKey.SOURCE_RUN
_SEARCH_PAGE = 100


@dataclass(frozen=True)
class Produced:
    """The logged models (entities) a run produced and the ids of its linked traces."""

    models: list[Any] = field(default_factory=list)
    trace_ids: list[str] = field(default_factory=list)


# -- the store's side -------------------------------------------------------------------


def from_session(session: Any, run_id: str) -> Produced:
    """Read inside the store's session (the sealing transaction)."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels.models import SqlLoggedModel

    models = (
        session.query(SqlLoggedModel)
        .filter(SqlLoggedModel.source_run_id == run_id)
        .order_by(SqlLoggedModel.model_id)
        .all()
    )
    rows = session.execute(
        sqlalchemy.text(
            "SELECT request_id FROM trace_request_metadata WHERE key = :k AND value = :r "
            "UNION SELECT source_id FROM entity_associations WHERE source_type = 'trace' "
            "AND destination_type = 'run' AND destination_id = :r"
        ),
        {"k": SOURCE_RUN_KEY, "r": run_id},
    )
    return Produced(
        models=list(models),
        trace_ids=sorted({str(row[0]) for row in rows}),
    )


def local_artifact_dir(artifact_location: str) -> str | None:
    """Where a model's artifacts are on this machine, or None when they are not local.

    `mlflow-artifacts:/...` is resolved against the server's artifacts destination
    (set by `mlflow server` in its environment); object stores give None.
    """
    location = artifact_location.removeprefix("mlaudit+")
    if location.startswith("mlflow-artifacts:"):
        from mlflow.server.constants import ARTIFACTS_DESTINATION_ENV_VAR

        destination = os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR, "")
        root = local_artifact_dir(destination) if destination else None
        if root is None:
            return None
        relative = location.removeprefix("mlflow-artifacts:").lstrip("/")
        return os.path.join(root, relative)
    if location.startswith("file://"):
        return location.removeprefix("file://")
    if "://" not in location and ":" not in location.split("/", 1)[0]:
        return location
    return None


def manifest_of_directory(directory: str) -> dict[str, str]:
    """{relative path: sha256 of the bytes} of every file under `directory`."""
    return {relative: _sha256_file(path) for relative, path in _files(directory)}


def _files(directory: str) -> Iterator[tuple[str, str]]:
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            yield os.path.relpath(path, directory).replace(os.sep, "/"), path


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_artifacts_sha256(artifact_location: str) -> str | None:
    """The manifest digest of a model's artifacts, or None when they are not local."""
    directory = local_artifact_dir(artifact_location)
    if directory is None or not os.path.isdir(directory):
        return None
    return run_record.artifact_manifest_sha256(manifest_of_directory(directory))


# -- verify's side (REST only) -------------------------------------------------------------


def from_rest(client: Any, run: Any) -> Produced:
    """The same two lists, through the MLflow client (`MlflowClient`), for `track verify`."""
    run_id, experiment_id = run.info.run_id, str(run.info.experiment_id)
    models: list[Any] = []
    token = None
    while True:
        page = client.search_logged_models(
            experiment_ids=[experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
            max_results=_SEARCH_PAGE,
            page_token=token,
        )
        models.extend(page)
        token = page.token
        if not token:
            break
    trace_ids: set[str] = set()
    token = None
    while True:
        traces = client.search_traces(
            locations=[experiment_id],
            run_id=run_id,
            include_spans=False,
            max_results=_SEARCH_PAGE,
            page_token=token,
        )
        trace_ids.update(str(t.info.trace_id) for t in traces)
        token = traces.token
        if not token:
            break
    return Produced(
        models=sorted(models, key=lambda m: str(m.model_id)),
        trace_ids=sorted(trace_ids),
    )


def record_from_rest(client: Any, run: Any, metric_history: Any) -> bytes:
    """The record `track verify` recomputes for one run: what the ledger should call.

    Asks the server for models and traces only when the run's seal says its record is
    version 2 (tag `mlaudit.seal.format`), so runs without them cost no extra request.
    Removing the tag from a run that has models or traces rebuilds a record without
    them, so the digest no longer matches and verify names the run.
    """
    outputs = from_rest(client, run) if run_record.has_outputs(run.data.tags) else Produced()
    data = run_record.record_input_from_run(
        run, metric_history, logged_models=outputs.models, trace_ids=outputs.trace_ids
    )
    return run_record.record_bytes(data)


def rest_model_manifest(client: Any, model: Any, download_dir: str) -> dict[str, str]:
    """Download a logged model's artifacts and hash them (the artifact check of verify).

    Compare `artifact_manifest_sha256(...)` of the result with the model's tag
    `mlaudit.seal.artifacts.sha256`: the record covers the tag, this covers the files.
    """
    import mlflow

    # The artifact location, not `models:/<id>`: that path adds a local
    # `registered_model_meta` file the server never had.
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=model.artifact_location,
        dst_path=download_dir,
        tracking_uri=client._tracking_client.tracking_uri,
    )
    return manifest_of_directory(local)
