"""Writes to what a run produces, logged models and traces: allowed while the run is open.

A mixin of the append-only store (audit/tracking/store.py), which supplies the run
checks (`_run_write`, `_check_writable`). A model is writable while the run that
produced it is; a trace while every run it is linked to is. Never allows a write the
sealed record covers once that run is sealed (the database triggers back this up).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy
from mlflow.store.tracking.dbmodels.models import SqlLoggedModel, SqlLoggedModelTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from audit.tracking import produced as run_outputs
from audit.tracking import record as run_record
from audit.tracking.store_policy import refusal, refuse_store_keys, refuse_store_tags


class ProducedWrites(SqlAlchemyStore):
    """Logged-model and trace writes, checked against the run that owns them."""

    def _check_writable(self, run_id: str, what: str) -> None:
        raise NotImplementedError  # the store's

    def _run_write(self, run_id: str, what: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError  # the store's

    # -- logged models: writable while the run that produced them is -----------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Any = None,
        params: Any = None,
        model_type: str | None = None,
    ) -> Any:
        if not source_run_id:
            # A model without a run would never be sealed, so it could change for good.
            raise refusal(
                "a model must be logged inside a run (mlflow.start_run()): a model "
                "without a run is never sealed, so this server does not accept it"
            )
        with self._run_write(source_run_id, "create_logged_model"):
            refuse_store_tags(tags)
            return super().create_logged_model(
                experiment_id, name, source_run_id, tags, params, model_type
            )

    def log_logged_model_params(self, model_id: str, params: Any) -> Any:
        with self._model_write(model_id, "log_logged_model_params"):
            return super().log_logged_model_params(model_id, params)

    def set_logged_model_tags(self, model_id: str, tags: Any) -> None:
        if tags and all(t.key == run_record.MODEL_REGISTRY_TAG for t in tags):
            # MLflow's client repeats the registry back-reference after registering a
            # version; like `set_model_versions_tags` it is outside the record.
            super().set_logged_model_tags(model_id, tags)
            return
        with self._model_write(model_id, "set_logged_model_tags"):
            refuse_store_tags(tags)
            super().set_logged_model_tags(model_id, tags)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        with self._model_write(model_id, "delete_logged_model_tag"):
            refuse_store_keys([key])
            super().delete_logged_model_tag(model_id, key)

    def finalize_logged_model(self, model_id: str, status: Any) -> Any:
        with self._model_write(model_id, "finalize_logged_model"):
            return super().finalize_logged_model(model_id, status)

    def set_model_versions_tags(self, name: str, version: str, model_id: str) -> None:
        # Registering a version (usually after the run is sealed) notes it on the logged
        # model. Only this one tag is written, and the record leaves it out.
        with self.ManagedSessionMaker(read_only=False) as session:
            model = session.get(SqlLoggedModel, model_id)
            if model is None:
                raise refusal(f"there is no logged model {model_id} to register")
            key = run_record.MODEL_REGISTRY_TAG
            tag = session.get(SqlLoggedModelTag, (model_id, key))
            versions = json.loads(tag.tag_value) if tag is not None else []
            entry = {"name": name, "version": str(version)}
            if entry not in versions:
                versions.append(entry)
            session.merge(
                SqlLoggedModelTag(
                    model_id=model_id,
                    experiment_id=model.experiment_id,
                    tag_key=key,
                    tag_value=json.dumps(versions),
                )
            )

    @contextlib.contextmanager
    def _model_write(self, model_id: str, what: str) -> Iterator[None]:
        with self.ManagedSessionMaker() as session:
            run_id = (
                session.query(SqlLoggedModel.source_run_id)
                .filter(SqlLoggedModel.model_id == model_id)
                .scalar()
            )
        if run_id is None:  # unknown model: MLflow's own answer (404) says so
            yield
            return
        with self._run_write(str(run_id), what):
            yield

    # -- traces: a trace linked to a run is writable while that run is ---------------

    def start_trace(self, trace_info: Any) -> Any:
        run_id = (trace_info.trace_metadata or {}).get(run_outputs.SOURCE_RUN_KEY)
        if not run_id:
            return super().start_trace(trace_info)
        with self._run_write(str(run_id), "start_trace"):
            return super().start_trace(trace_info)

    def log_spans(self, location: str, spans: Any, tracking_uri: Any = None) -> Any:
        # Span contents are not in the sealed record (only the trace ids are).
        return super().log_spans(location, spans, tracking_uri=tracking_uri)

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> Any:
        self._check_trace_writable(trace_id, "set_trace_tag")
        return super().set_trace_tag(trace_id, key, value)

    def delete_trace_tag(self, trace_id: str, key: str) -> Any:
        self._check_trace_writable(trace_id, "delete_trace_tag")
        return super().delete_trace_tag(trace_id, key)

    def _check_trace_writable(self, trace_id: str, what: str) -> None:
        with self.ManagedSessionMaker() as session:
            rows = session.execute(
                sqlalchemy.text(
                    "SELECT value FROM trace_request_metadata WHERE request_id = :t AND key = :k "
                    "UNION SELECT destination_id FROM entity_associations WHERE source_id = :t "
                    "AND source_type = 'trace' AND destination_type = 'run'"
                ),
                {"t": trace_id, "k": run_outputs.SOURCE_RUN_KEY},
            ).all()
        for (run_id,) in rows:
            self._check_writable(str(run_id), what)
