"""The append-only MLflow tracking store (entry point `mlaudit+sqlite`, `mlaudit+postgresql`)."""

from __future__ import annotations

from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore


class AppendOnlyTrackingStore(SqlAlchemyStore):
    """MLflow's SQL store with an allow-list of operations and sealed runs."""
