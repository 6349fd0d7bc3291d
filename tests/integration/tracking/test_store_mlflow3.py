"""MLflow 3 on the append-only store, in-process over a real SQLite file.

Before the seal: logged models, model metrics, traces, tag deletes, experiment tags
work as in MLflow. At the seal: the record covers the models the run produced and its
linked traces. After it: every change to them is refused, and the triggers stop a
direct database edit; with the triggers dropped, the recomputed record differs.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

from mlflow.entities import (  # noqa: E402
    LoggedModelParameter,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    RunStatus,
    RunTag,
)
from mlflow.entities.trace_info import TraceInfo  # noqa: E402
from mlflow.entities.trace_location import TraceLocation  # noqa: E402
from mlflow.entities.trace_state import TraceState  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402

from audit.tracking import record as run_record  # noqa: E402
from audit.tracking import triggers  # noqa: E402
from audit.tracking.store import AppendOnlyTrackingStore  # noqa: E402


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store3") / "mlflow.db"


@pytest.fixture(scope="module")
def store(db_path: Path) -> AppendOnlyTrackingStore:
    # MLflow's own keywords: code written for SqlAlchemyStore builds ours unchanged.
    return AppendOnlyTrackingStore(
        db_uri=f"sqlite:///{db_path}", default_artifact_root=str(db_path.parent / "art")
    )


@pytest.fixture
def experiment(store: AppendOnlyTrackingStore) -> str:
    return str(store.create_experiment(f"exp-{uuid.uuid4().hex}"))


def refused(call: Any, *needles: str) -> str:
    with pytest.raises(MlflowException) as caught:
        call()
    assert caught.value.error_code == "RESOURCE_CONFLICT"
    assert caught.value.get_http_status_code() == 409  # not 401/403: no "credentials" hint
    message = str(caught.value.message)
    for needle in needles:
        assert needle in message, message
    return message


def new_run(store: AppendOnlyTrackingStore, experiment: str) -> str:
    return str(store.create_run(experiment, "tester", 1_000, [], "trial").info.run_id)


def trace_of(experiment: str, run_id: str) -> TraceInfo:
    return TraceInfo(
        trace_id=f"tr-{uuid.uuid4().hex}",
        trace_location=TraceLocation.from_experiment_id(experiment),
        request_time=1_500,
        state=TraceState.OK,
        execution_duration=3,
        trace_metadata={"mlflow.sourceRun": run_id},
    )


def model_with_files(store: AppendOnlyTrackingStore, experiment: str, run_id: str) -> Any:
    model = store.create_logged_model(
        experiment,
        "clf",
        run_id,
        tags=[LoggedModelTag("flavor", "sklearn")],
        params=[LoggedModelParameter("C", "1.0")],
    )
    os.makedirs(model.artifact_location, exist_ok=True)
    Path(model.artifact_location, "MLmodel").write_text("flavors: {}\n")
    store.log_metric(run_id, Metric("acc", 0.75, 10, 1, model_id=model.model_id))
    store.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model


def recomputed(store: AppendOnlyTrackingStore, run_id: str) -> str:
    """What verify does, from entities only: the run, its histories, models, traces."""
    run = store.get_run(run_id)
    history = {key: store.get_metric_history(run_id, key) for key in run.data.metrics}
    models = store.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    traces = store.search_traces(
        locations=[run.info.experiment_id], filter_string=f"metadata.mlflow.sourceRun = '{run_id}'"
    )[0]
    data = run_record.record_input_from_run(
        run, history, logged_models=models, trace_ids=[t.trace_id for t in traces]
    )
    return run_record.record_sha256(run_record.record_bytes(data))


def test_the_store_takes_mlflows_constructor_keywords(db_path: Path) -> None:
    other = AppendOnlyTrackingStore(
        db_uri=f"mlaudit+sqlite:///{db_path}", default_artifact_root="mlflow-artifacts:/"
    )
    assert isinstance(other, SqlAlchemyStore)
    assert other.artifact_root_uri == "mlflow-artifacts:/"


def test_before_the_seal_mlflow3_writes_work(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    store.log_logged_model_params(model.model_id, [LoggedModelParameter("max_iter", "5")])
    store.set_logged_model_tags(model.model_id, [LoggedModelTag("stage", "trained")])
    store.delete_logged_model_tag(model.model_id, "stage")
    store.set_tag(run_id, RunTag("scratch", "1"))
    store.delete_tag(run_id, "scratch")
    trace = store.start_trace(trace_of(experiment, run_id))
    store.set_trace_tag(trace.trace_id, "reviewed", "no")
    store.set_experiment_tag(experiment, RunTag("mlflow.note.content", "what this study is"))
    store.update_run_info(run_id, RunStatus.SCHEDULED, None, None)
    store.update_run_info(run_id, RunStatus.RUNNING, None, None)
    got = store.get_logged_model(model.model_id)
    assert got.params == {"C": "1.0", "max_iter": "5"}
    assert got.tags == {"flavor": "sklearn"}
    assert [(m.key, m.value, m.step) for m in got.metrics] == [("acc", 0.75, 1)]
    assert "scratch" not in store.get_run(run_id).data.tags
    assert store.get_experiment(experiment).tags["mlflow.note.content"] == "what this study is"
    assert store.seal_of(run_id) is None


def test_a_model_outside_any_run_is_refused_in_words(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    message = refused(lambda: store.create_logged_model(experiment, "loose"), "inside a run")
    assert "create_logged_model" not in message


def test_the_seal_covers_models_and_traces(store: AppendOnlyTrackingStore, experiment: str) -> None:
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    trace = store.start_trace(trace_of(experiment, run_id))
    store.update_run_info(run_id, RunStatus.FINISHED, None, None)
    seal = store.seal_of(run_id)
    assert seal is not None
    run = store.get_run(run_id)
    assert run.info.end_time is None  # ended without end_time: NULL, as in MLflow
    assert run.data.tags[run_record.SEALED_TAG].startswith(f"sealed (sequence {seal.seq}) at ")
    assert run_record.has_outputs(run.data.tags)  # verify knows to ask for models
    tags = store.get_logged_model(model.model_id).tags
    expected = run_record.artifact_manifest_sha256(
        {"MLmodel": __import__("hashlib").sha256(b"flavors: {}\n").hexdigest()}
    )
    assert tags[run_record.MODEL_ARTIFACTS_SHA256_TAG] == expected
    assert recomputed(store, run_id) == seal.sha256
    # The record really holds them: without the models or traces it is another digest.
    history = {k: store.get_metric_history(run_id, k) for k in run.data.metrics}
    bare = run_record.record_input_from_run(run, history, trace_ids=[trace.trace_id])
    assert run_record.record_sha256(run_record.record_bytes(bare)) != seal.sha256


def test_a_run_without_models_keeps_the_version_1_record(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    run_id = new_run(store, experiment)
    store.update_run_info(run_id, RunStatus.FINISHED, 5, None)
    run = store.get_run(run_id)
    record = run_record.record_bytes(run_record.record_input_from_run(run, {}))
    assert b'"format":"mlaudit.run-record/1"' in record
    assert b'"models"' not in record
    assert not run_record.has_outputs(run.data.tags)  # and verify asks nothing more


def _after_seal(store: AppendOnlyTrackingStore, experiment: str, run_id: str, model: str) -> Any:
    return {
        "model params": lambda: store.log_logged_model_params(
            model, [LoggedModelParameter("late", "1")]
        ),
        "model tags": lambda: store.set_logged_model_tags(model, [LoggedModelTag("late", "1")]),
        "model tag delete": lambda: store.delete_logged_model_tag(model, "flavor"),
        "model status": lambda: store.finalize_logged_model(model, LoggedModelStatus.FAILED),
        "model metric": lambda: store.log_metric(run_id, Metric("acc", 0.1, 11, 2, model_id=model)),
        "new model": lambda: store.create_logged_model(experiment, "late", run_id),
        "model delete": lambda: store.delete_logged_model(model),
        "new trace": lambda: store.start_trace(trace_of(experiment, run_id)),
        "link trace": lambda: store.link_traces_to_run(["tr-0123"], run_id),
        "run tag delete": lambda: store.delete_tag(run_id, "mlflow.runName"),
        "rename": lambda: store.update_run_info(run_id, None, None, "other"),
        "reschedule": lambda: store.update_run_info(run_id, RunStatus.SCHEDULED, None, None),
    }


@pytest.mark.parametrize(
    "change",
    sorted(_after_seal(None, "", "", "").keys()),  # type: ignore[arg-type]
)
def test_after_the_seal_what_the_run_produced_cannot_change(
    store: AppendOnlyTrackingStore, experiment: str, change: str
) -> None:
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    store.start_trace(trace_of(experiment, run_id))
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    seal = store.seal_of(run_id)
    assert seal is not None
    message = refused(_after_seal(store, experiment, run_id, model.model_id)[change])
    assert "_" not in message.split("): ", 1)[-1], message  # words, not method names
    assert seal.sha256 not in message
    assert recomputed(store, run_id) == seal.sha256


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE logged_model_metrics SET metric_value = 0.99 WHERE model_id = :model",
        "INSERT INTO logged_model_params (model_id, experiment_id, param_key, param_value) "
        "VALUES (:model, :experiment, 'late', '1')",
        "DELETE FROM logged_model_tags WHERE model_id = :model",
        "UPDATE logged_models SET name = 'other' WHERE model_id = :model",
        "DELETE FROM trace_request_metadata WHERE value = :run",
        "INSERT INTO entity_associations (association_id, source_type, source_id, "
        "destination_type, destination_id) VALUES ('a-1', 'trace', 'tr-x', 'run', :run)",
    ],
)
def test_triggers_block_direct_edits_of_what_a_sealed_run_produced(
    store: AppendOnlyTrackingStore, db_path: Path, experiment: str, statement: str
) -> None:
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    store.start_trace(trace_of(experiment, run_id))
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    with sqlite3.connect(db_path, timeout=30) as db, pytest.raises(sqlite3.DatabaseError) as caught:
        db.execute(
            statement, {"model": model.model_id, "run": run_id, "experiment": int(experiment)}
        )
    assert triggers.SEALED_MESSAGE in str(caught.value)


def test_with_the_triggers_dropped_the_record_names_a_model_metric_edit(
    tmp_path: Path,
) -> None:
    # A superuser drops the triggers and edits a model's metric: the record recomputed
    # from what the store now answers no longer matches the seal.
    db_path = tmp_path / "edited.db"
    store = AppendOnlyTrackingStore(f"mlaudit+sqlite:///{db_path}", str(tmp_path / "art"))
    experiment = str(store.create_experiment("edited"))
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    seal = store.seal_of(run_id)
    assert seal is not None
    assert recomputed(store, run_id) == seal.sha256
    with sqlite3.connect(db_path, timeout=30) as db:
        for name in triggers.installed_triggers(store.engine):
            db.execute(f"DROP TRIGGER {name}")
        db.execute(
            "UPDATE logged_model_metrics SET metric_value = 0.99 WHERE model_id = ?",
            (model.model_id,),
        )
    assert recomputed(store, run_id) != seal.sha256


@pytest.mark.postgres
def test_on_postgresql_models_and_traces_are_sealed_and_guarded(
    postgres_uri: str, tmp_path: Path
) -> None:
    import psycopg

    store = AppendOnlyTrackingStore(
        db_uri=f"mlaudit+{postgres_uri}", default_artifact_root=str(tmp_path / "art")
    )
    experiment = str(store.create_experiment(f"pg-{uuid.uuid4().hex}"))
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    store.start_trace(trace_of(experiment, run_id))
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    seal = store.seal_of(run_id)
    assert seal is not None
    assert recomputed(store, run_id) == seal.sha256
    refused(lambda: store.set_logged_model_tags(model.model_id, [LoggedModelTag("x", "1")]))
    with psycopg.connect(postgres_uri, autocommit=True) as db:
        for statement in (
            "UPDATE logged_model_metrics SET metric_value = 0.99 WHERE model_id = %(model)s",
            "DELETE FROM trace_request_metadata WHERE value = %(run)s",
        ):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation) as caught:
                db.execute(statement, {"model": model.model_id, "run": run_id})
            assert triggers.SEALED_MESSAGE in str(caught.value)
    assert recomputed(store, run_id) == seal.sha256


def test_display_uri_keeps_the_scheme_and_hides_the_password() -> None:
    from audit.tracking.store import display_uri

    shown = display_uri("mlaudit+postgresql://alice:secret@127.0.0.1/db")
    assert shown == "mlaudit+postgresql://alice:***@127.0.0.1/db"
    assert display_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_registering_a_sealed_model_notes_the_version_outside_the_record(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    # `mlflow.register_model("models:/<id>")` makes the server write this back-reference
    # on the logged model, usually well after its run was sealed.
    run_id = new_run(store, experiment)
    model = model_with_files(store, experiment, run_id)
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    seal = store.seal_of(run_id)
    assert seal is not None
    store.set_model_versions_tags("fraud", "1", model.model_id)
    store.set_model_versions_tags("fraud", "2", model.model_id)
    tags = store.get_logged_model(model.model_id).tags
    assert tags[run_record.MODEL_REGISTRY_TAG] == (
        '[{"name": "fraud", "version": "1"}, {"name": "fraud", "version": "2"}]'
    )
    # MLflow's client then writes the same tag itself.
    backref = LoggedModelTag(run_record.MODEL_REGISTRY_TAG, "[]")
    store.set_logged_model_tags(model.model_id, [backref])
    assert recomputed(store, run_id) == seal.sha256
    refused(lambda: store.set_logged_model_tags(model.model_id, [LoggedModelTag("x", "y")]))
    refused(lambda: store.set_logged_model_tags(model.model_id, [backref, LoggedModelTag("x", "")]))
