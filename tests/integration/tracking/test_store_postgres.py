"""The append-only store on a real PostgreSQL server: seals, refusals, triggers, concurrency.

Skips with the reason when no PostgreSQL answers (fixture `postgres_uri`).
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():  # MLflow 3.17's ORM uses a loader SQLAlchemy 2.1 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from tracking_study import check_one_run_per_key

from audit.tracking import record as run_record
from audit.tracking import triggers
from audit.tracking.store import AppendOnlyTrackingStore

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]


@pytest.fixture(scope="module")
def store(postgres_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AppendOnlyTrackingStore:
    artifacts = tmp_path_factory.mktemp("pg-artifacts")
    return AppendOnlyTrackingStore(f"mlaudit+{postgres_uri}", str(artifacts))


@pytest.fixture
def db(postgres_uri: str) -> Iterator[Any]:
    import psycopg

    connection = psycopg.connect(postgres_uri, autocommit=True)
    yield connection
    connection.close()


def sealed_run(store: AppendOnlyTrackingStore, experiment: str) -> str:
    run_id = str(store.create_run(experiment, "tester", 1_000, [], "trial").info.run_id)
    store.log_batch(
        run_id, [Metric("loss", 0.5, 10, 0)], [Param("lr", "0.1")], [RunTag("arm", "a")]
    )
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    return run_id


def recomputed_sha256(store: AppendOnlyTrackingStore, run_id: str) -> str:
    run = store.get_run(run_id)
    history = {key: store.get_metric_history(run_id, key) for key in run.data.metrics}
    data = run_record.record_input_from_run(run, history)
    return run_record.record_sha256(run_record.record_bytes(data))


def test_postgres_seals_match_the_record(store: AppendOnlyTrackingStore) -> None:
    experiment = str(store.create_experiment(f"pg-{uuid.uuid4().hex}"))
    runs = [sealed_run(store, experiment) for _ in range(3)]
    seals = store.seals(experiment)
    assert [s.seq for s in seals] == [0, 1, 2]
    assert [s.run_id for s in seals] == runs
    for seal in seals:
        assert recomputed_sha256(store, seal.run_id) == seal.sha256


def test_postgres_refuses_changes_to_a_sealed_run(store: AppendOnlyTrackingStore) -> None:
    experiment = str(store.create_experiment(f"pg-{uuid.uuid4().hex}"))
    run_id = sealed_run(store, experiment)
    for call in (
        lambda: store.log_param(run_id, Param("late", "1")),
        lambda: store.set_tag(run_id, RunTag("late", "1")),
        lambda: store.update_run_info(run_id, RunStatus.RUNNING, None, None),
        lambda: store.delete_run(run_id),
        lambda: store.rename_experiment(experiment, "x"),
    ):
        with pytest.raises(MlflowException) as caught:
            call()
        assert caught.value.error_code == "RESOURCE_CONFLICT"


def test_postgres_triggers_are_installed(store: AppendOnlyTrackingStore) -> None:
    names = triggers.installed_triggers(store.engine)
    assert "mlaudit_seals_append_only" in names
    assert "mlaudit_metrics_sealed" in names


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE metrics SET value = 42 WHERE run_uuid = %(run)s",
        "DELETE FROM metrics WHERE run_uuid = %(run)s",
        "INSERT INTO params (key, value, run_uuid) VALUES ('new', 'x', %(run)s)",
        "UPDATE params SET value = 'x' WHERE run_uuid = %(run)s",
        "DELETE FROM tags WHERE run_uuid = %(run)s",
        "UPDATE latest_metrics SET value = 42 WHERE run_uuid = %(run)s",
        "UPDATE runs SET status = 'RUNNING' WHERE run_uuid = %(run)s",
        "DELETE FROM runs WHERE run_uuid = %(run)s",
        "UPDATE mlaudit_seals SET sha256 = 'x' WHERE run_id = %(run)s",
        "DELETE FROM mlaudit_seals WHERE run_id = %(run)s",
    ],
)
def test_postgres_triggers_block_direct_changes(
    store: AppendOnlyTrackingStore, db: Any, statement: str
) -> None:
    import psycopg

    experiment = str(store.create_experiment(f"pg-{uuid.uuid4().hex}"))
    run_id = sealed_run(store, experiment)
    seal = store.seal_of(run_id)
    with db.cursor() as cursor, pytest.raises(psycopg.IntegrityError, match="mlaudit: "):
        cursor.execute(statement, {"run": run_id})
    assert store.seal_of(run_id) == seal
    assert recomputed_sha256(store, run_id) == seal.sha256  # type: ignore[union-attr]


def test_postgres_open_runs_stay_writable_directly(store: AppendOnlyTrackingStore, db: Any) -> None:
    experiment = str(store.create_experiment(f"pg-{uuid.uuid4().hex}"))
    run_id = str(store.create_run(experiment, "tester", 1, [], "open").info.run_id)
    store.log_param(run_id, Param("lr", "0.1"))
    with db.cursor() as cursor:
        cursor.execute("UPDATE params SET value = '0.2' WHERE run_uuid = %s", (run_id,))
    assert store.get_run(run_id).data.params["lr"] == "0.2"


@pytest.mark.slow
def test_postgres_concurrent_sealers_get_contiguous_seqs(store: AppendOnlyTrackingStore) -> None:
    experiment = str(store.create_experiment(f"pg-{uuid.uuid4().hex}"))
    failures: list[str] = []

    def writer() -> None:
        try:
            for _ in range(25):
                sealed_run(store, experiment)
        except Exception as error:
            failures.append(repr(error))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert [s.seq for s in store.seals(experiment)] == list(range(200))


def test_postgres_one_run_per_idempotency_key(store: AppendOnlyTrackingStore) -> None:
    check_one_run_per_key(store)
