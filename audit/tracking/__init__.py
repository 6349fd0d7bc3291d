"""Immutable MLflow tracking: append-only store plugin, seals, server process, client logging.

Import-light on purpose: MLflow loads the `mlflow.tracking_store` entry point while
`import mlflow` is still running, so the entry point is the factory below, which
imports the store class (and with it MLflow's SQL store) only when a store is built.
"""

from __future__ import annotations

from typing import Any


def tracking_store(store_uri: str, artifact_uri: str | None = None, **kwargs: Any) -> Any:
    """Entry point for the `mlaudit+sqlite` / `mlaudit+postgresql` schemes."""
    from audit.tracking.store import AppendOnlyTrackingStore

    return AppendOnlyTrackingStore(store_uri, artifact_uri, **kwargs)


def registry_store(store_uri: str, *args: Any, **kwargs: Any) -> Any:
    """Entry point (`mlflow.model_registry_store`): the append-only model registry."""
    from audit.tracking.registry import AppendOnlyRegistryStore

    return AppendOnlyRegistryStore(store_uri)


def artifact_repository(artifact_uri: str, *args: Any, **kwargs: Any) -> Any:
    """Entry point for the `mlaudit+file` artifact scheme: write-once served artifacts."""
    from audit.tracking.artifacts import WriteOnceArtifactRepository

    return WriteOnceArtifactRepository(artifact_uri, *args, **kwargs)
