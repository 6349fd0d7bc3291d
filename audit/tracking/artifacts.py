"""The write-once artifact store behind `mlaudit server` (scheme `mlaudit+file`).

Served artifacts (`--artifacts-destination`) go through this repository. It never
overwrites or deletes a file, and once a run is sealed it refuses every new file
under that run: the sealed record holds the digest of the artifact manifest, so
the files it lists must stay as they were. Object stores (s3, gs) get the same
guarantee from their retention lock instead.
"""

from __future__ import annotations

import os
import re
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repo import MultipartUploadMixin
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

SCHEME = "mlaudit+file"
_RUN_SEGMENTS = re.compile(r"(?:^|/)([0-9a-f]{32})/artifacts(?:/|$)")
# MLflow 3 keeps a logged model's files under <experiment>/models/<model_id>/artifacts.
_MODEL_SEGMENTS = re.compile(r"(?:^|/)models/(m-[0-9a-f]{32})/artifacts(?:/|$)")


def run_id_of(artifact_path: str | None) -> str | None:
    """The run a relative artifact path belongs to (`<exp>/<run_id>/artifacts/...`)."""
    if not artifact_path:
        return None
    match = _RUN_SEGMENTS.search(artifact_path.replace(os.sep, "/"))
    return match.group(1) if match else None


def model_id_of(artifact_path: str | None) -> str | None:
    """The logged model an artifact path belongs to (`<exp>/models/<model_id>/artifacts/...`)."""
    if not artifact_path:
        return None
    match = _MODEL_SEGMENTS.search(artifact_path.replace(os.sep, "/"))
    return match.group(1) if match else None


def _active_store() -> Any:
    from audit.tracking.store import AppendOnlyTrackingStore

    store: Any = AppendOnlyTrackingStore.active
    if store is None:
        try:
            from mlflow.server.handlers import _get_tracking_store

            store = _get_tracking_store()
        except Exception:  # outside a server there is no store to ask
            return None
    if not isinstance(store, AppendOnlyTrackingStore):
        return None
    return store


def _seal_lookup(run_id: str) -> Any:
    """The run's seal as the server's tracking store sees it, or None."""
    store = _active_store()
    return None if store is None else store.seal_of(run_id)


def _model_seal_lookup(model_id: str) -> Any:
    """The seal of the run that produced a logged model, or None."""
    store = _active_store()
    return None if store is None else store.seal_of_model(model_id)


class WriteOnceArtifactRepository(LocalArtifactRepository, MultipartUploadMixin):
    """A local artifact directory where files are added, never replaced or removed."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        plain = artifact_uri.removeprefix("mlaudit+")
        super().__init__(plain, tracking_uri=tracking_uri, registry_uri=registry_uri)

    def _get_destination_artifact_path(
        self, artifact_file_name: str, artifact_path: str | None = None
    ) -> tuple[str, str]:
        # Every single-file write (sync, stream, async stream) resolves its target here.
        artifact_dir, destination = super()._get_destination_artifact_path(
            artifact_file_name, artifact_path
        )
        relative = os.path.relpath(destination, self.artifact_dir)
        self._refuse_if_sealed(relative)
        if os.path.lexists(destination):
            raise _refusal(
                f"the artifact {relative} already exists: artifacts are write-once "
                "on this server (log it under a new name)"
            )
        return str(artifact_dir), str(destination)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        for root, _dirs, files in os.walk(local_dir):
            sub = os.path.relpath(root, local_dir)
            target = artifact_path if sub == "." else os.path.join(artifact_path or "", sub)
            for name in files:
                self.log_artifact(os.path.join(root, name), target or None)  # type: ignore[no-untyped-call]

    def delete_artifacts(self, artifact_path: str | None = None) -> None:
        self._refuse_if_sealed(artifact_path or "")
        raise _refusal("deleting artifacts is refused: artifacts are write-once on this server")

    # Multipart uploads are answered with a clean refusal (403) rather than MLflow's
    # 501: a single PUT is the one way in, and it is checked above.
    def create_multipart_upload(
        self, local_file: str, num_parts: int = 1, artifact_path: str | None = None
    ) -> Any:
        raise _refusal("multipart upload is refused: upload each artifact with one PUT")

    def complete_multipart_upload(
        self, local_file: str, upload_id: str, parts: Any = None, artifact_path: str | None = None
    ) -> None:
        raise _refusal("multipart upload is refused: upload each artifact with one PUT")

    def abort_multipart_upload(
        self, local_file: str, upload_id: str, artifact_path: str | None = None
    ) -> None:
        raise _refusal("multipart upload is refused: upload each artifact with one PUT")

    def _refuse_if_sealed(self, relative_path: str) -> None:
        from audit.tracking.store_policy import sealed_refusal

        run_id = run_id_of(relative_path)
        seal = _seal_lookup(run_id) if run_id is not None else None
        if seal is None:
            model_id = model_id_of(relative_path)
            seal = _model_seal_lookup(model_id) if model_id is not None else None
        if seal is not None:
            raise sealed_refusal(seal, "artifacts")


def _refusal(message: str) -> MlflowException:
    from audit.tracking.store_policy import refusal

    return refusal(message)
