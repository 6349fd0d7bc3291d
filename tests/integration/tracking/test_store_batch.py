"""The store's fast paths: log_batch in one transaction (store_batch.py), run-key indexes.

The same batches go to MLflow's own SqlAlchemyStore and to the append-only store, on
SQLite and on PostgreSQL (skipped with the reason when none answers); every param,
tag, latest value, metric point and error must read back the same. The lookup of a
run by its idempotency key must find it through the partial index (key_index.py).
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # MLflow 3.17's ORM uses a loader SQLAlchemy 2.1 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")

import sqlalchemy
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from audit.tracking import key_index, store_batch
from audit.tracking.runspec import TRIAL_KEY_TAG
from audit.tracking.store import AppendOnlyTrackingStore, RunKey

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

NAN, INF = float("nan"), float("inf")

# Each batch: (metrics, params, tags). Repeats within a batch and of stored points,
# NaN and infinities, ties, older steps, params given again, tags given twice.
BATCHES: list[tuple[list[Metric], list[Param], list[RunTag]]] = [
    (
        [
            Metric("loss", 0.5, 10, 0),
            Metric("loss", 0.5, 10, 0),
            Metric("loss", 0.25, 11, 1),
            Metric("loss", 0.75, 11, 1),
            Metric("acc", NAN, 10, 3),
            Metric("acc", 0.0, 10, 3),
            Metric("zero", 0.0, 10, 3),
            Metric("zero", NAN, 10, 3),
            Metric("up", INF, 1, 0),
            Metric("down", -INF, 1, 0),
        ],
        [Param("a", "1"), Param("b", "2")],
        [RunTag("t1", "x"), RunTag("t1", "y"), RunTag("t2", "z")],
    ),
    (
        [
            Metric("loss", 0.25, 11, 1),
            Metric("loss", 9.0, 5, 0),
            Metric("acc", 0.5, 20, 4),
            Metric("up", 1.0, 2, 0),
        ],
        [Param("a", "1"), Param("c", "3")],
        [RunTag("t2", "zz"), RunTag("t3", "w"), RunTag("t1", "y")],
    ),
    ([], [], []),
    ([Metric("acc", 0.1, 1, 4)], [], [RunTag("t4", "")]),
]


def read_back(store: Any, run_id: str) -> dict[str, Any]:
    data = store.get_run(run_id).data
    history = {
        key: sorted(
            (m.step, m.timestamp, repr(m.value)) for m in store.get_metric_history(run_id, key)
        )
        for key in data.metrics
    }
    latest = {key: repr(value) for key, value in data.metrics.items()}
    return {"params": data.params, "tags": data.tags, "latest": latest, "history": history}


def outcome(store: Any, run_id: str, batch: tuple[Any, ...]) -> tuple[str, str] | None:
    try:
        store.log_batch(run_id, *batch)
    except MlflowException as error:
        return error.error_code, error.message.replace(run_id, "<run>")
    return None


def check_same(ours: AppendOnlyTrackingStore, stock: SqlAlchemyStore) -> None:
    runs = []
    for store in (ours, stock):
        experiment = store.create_experiment(f"batch-{uuid.uuid4().hex}")
        runs.append(str(store.create_run(experiment, "tester", 1_000, [], "trial").info.run_id))
    ours_run, stock_run = runs
    for metrics, params, tags in BATCHES:
        ours.log_batch(ours_run, metrics, params, tags)
        stock.log_batch(stock_run, metrics, params, tags)
        assert read_back(ours, ours_run) == read_back(stock, stock_run)
    refused: list[tuple[list[Metric], list[Param], list[RunTag]]] = [
        ([], [Param("a", "9")], []),  # a param changed
        ([Metric("x" * 300, 1.0, 1, 0)], [], []),  # a key MLflow refuses
        ([], [Param("d", "1"), Param("d", "1")], []),  # a key given twice
    ]
    for batch in refused:
        error = outcome(ours, ours_run, batch)
        expected = outcome(stock, stock_run, batch)
        assert error is not None
        assert error == expected
    assert read_back(ours, ours_run) == read_back(stock, stock_run)


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fast-paths") / "mlflow.db"


@pytest.fixture(scope="module")
def sqlite_store(sqlite_path: Path) -> AppendOnlyTrackingStore:
    return AppendOnlyTrackingStore(f"mlaudit+sqlite:///{sqlite_path}", str(sqlite_path.parent))


@pytest.fixture(scope="module")
def postgresql_store(
    postgres_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> AppendOnlyTrackingStore:
    return AppendOnlyTrackingStore(f"mlaudit+{postgres_uri}", str(tmp_path_factory.mktemp("pg")))


def test_sqlite_batches_read_back_as_mlflow_stores_them(
    sqlite_store: AppendOnlyTrackingStore, sqlite_path: Path
) -> None:
    # One file for both (each in its own experiment): the schema is created once.
    stock = SqlAlchemyStore(f"sqlite:///{sqlite_path}", str(sqlite_path.parent))  # type: ignore[no-untyped-call]
    check_same(sqlite_store, stock)


@pytest.mark.postgres
def test_postgresql_batches_read_back_as_mlflow_stores_them(
    postgresql_store: AppendOnlyTrackingStore, postgres_uri: str, tmp_path: Path
) -> None:
    stock = SqlAlchemyStore(postgres_uri, str(tmp_path))  # type: ignore[no-untyped-call]
    check_same(postgresql_store, stock)


def test_sqlite_lookup_of_a_trial_key_reads_the_index(
    sqlite_store: AppendOnlyTrackingStore,
) -> None:
    experiment = str(sqlite_store.create_experiment(f"keys-{uuid.uuid4().hex}"))
    tags = [RunTag(TRIAL_KEY_TAG, "arm/0")]
    run_id = sqlite_store.create_run(experiment, "tester", 1_000, tags, "trial").info.run_id
    assert sqlite_store._run_holding(experiment, RunKey(TRIAL_KEY_TAG, "arm/0")) == run_id
    assert sqlite_store._run_holding(experiment, RunKey(TRIAL_KEY_TAG, "arm/1")) is None
    match = key_index.value_match("sqlite", TRIAL_KEY_TAG)
    query = f"EXPLAIN QUERY PLAN SELECT t.run_uuid FROM tags t WHERE {match}"
    with sqlite_store.engine.connect() as connection:
        plan = " ".join(str(row) for row in connection.execute(sqlalchemy.text(query), {"v": "x"}))
    assert key_index.INDEXES[TRIAL_KEY_TAG] in plan


@pytest.mark.postgres
def test_postgresql_store_creates_the_run_key_indexes(
    postgresql_store: AppendOnlyTrackingStore,
) -> None:
    with postgresql_store.engine.connect() as connection:
        names = set(
            connection.execute(
                sqlalchemy.text("SELECT indexname FROM pg_indexes WHERE tablename = 'tags'")
            ).scalars()
        )
    assert set(key_index.INDEXES.values()) <= names


def test_only_key_tags_have_an_index_match() -> None:
    with pytest.raises(ValueError, match="not an idempotency key tag"):
        key_index.value_match("sqlite", "mlflow.runName")


def test_the_batches_take_the_one_transaction_path() -> None:
    # Otherwise the comparison above would only test MLflow against itself.
    assert all(store_batch.covers(metrics, tags) for metrics, _, tags in BATCHES)
