"""The append-only store in-process over a real SQLite file: allow-list, seals, triggers."""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# MLflow 3.17's own ORM models use a loader SQLAlchemy 2.1 deprecates; not ours to fix.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

from mlflow.entities import (  # noqa: E402
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: E402
from tracking_study import check_one_run_per_key  # noqa: E402

from audit.tracking import record as run_record  # noqa: E402
from audit.tracking import triggers  # noqa: E402
from audit.tracking.store import ALLOWED, ALLOWED_READS, AppendOnlyTrackingStore  # noqa: E402


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store") / "mlflow.db"


@pytest.fixture(scope="module")
def store(db_path: Path) -> AppendOnlyTrackingStore:
    return AppendOnlyTrackingStore(f"mlaudit+sqlite:///{db_path}", str(db_path.parent / "art"))


@pytest.fixture
def experiment(store: AppendOnlyTrackingStore) -> str:
    return str(store.create_experiment(f"exp-{uuid.uuid4().hex}"))


@pytest.fixture
def db(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    yield connection
    connection.close()


def new_run(store: AppendOnlyTrackingStore, experiment: str) -> str:
    return str(store.create_run(experiment, "tester", 1_000, [], "trial").info.run_id)


def fill(store: AppendOnlyTrackingStore, run_id: str) -> None:
    store.log_batch(
        run_id,
        metrics=[Metric("loss", 0.5, 10, 0), Metric("loss", 0.25, 11, 1)],
        params=[Param("lr", "0.1")],
        tags=[RunTag("arm", "baseline")],
    )


def sealed_run(store: AppendOnlyTrackingStore, experiment: str) -> str:
    run_id = new_run(store, experiment)
    fill(store, run_id)
    store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    return run_id


def assert_refused(call: Any, *needles: str) -> str:
    with pytest.raises(MlflowException) as caught:
        call()
    # 409, never 401/403: MLflow's client reads those as a credentials problem.
    assert caught.value.error_code == "RESOURCE_CONFLICT"
    message = str(caught.value.message)
    assert message.startswith("mlaudit: ")
    for needle in needles:
        assert needle in message
    return message


def recomputed_sha256(store: AppendOnlyTrackingStore, run_id: str) -> str:
    run = store.get_run(run_id)
    history = {key: store.get_metric_history(run_id, key) for key in run.data.metrics}
    data = run_record.record_input_from_run(run, history)
    return run_record.record_sha256(run_record.record_bytes(data))


# -- the allow-list ------------------------------------------------------------------


def _public_methods() -> list[str]:
    return sorted(
        name
        for name, _ in inspect.getmembers(SqlAlchemyStore, callable)
        if not name.startswith("_") and not inspect.isclass(getattr(SqlAlchemyStore, name))
    )


@pytest.mark.parametrize("name", [n for n in _public_methods() if n not in ALLOWED])
def test_every_method_off_the_allow_list_is_refused(
    store: AppendOnlyTrackingStore, name: str
) -> None:
    assert_refused(lambda: getattr(store, name)(), "append-only")


def test_a_method_mlflow_adds_later_is_refused_by_default(db_path: Path) -> None:
    class Newer(AppendOnlyTrackingStore):
        def rewrite_history(self) -> str:
            return "rewritten"

    newer = Newer(f"mlaudit+sqlite:///{db_path}", str(db_path.parent / "art"))
    assert_refused(newer.rewrite_history, "'rewrite history' is not offered")


def test_allow_list_names_only_methods_that_exist() -> None:
    ours = {"seal_of", "seal_of_model", "seals"}
    missing = sorted(n for n in ALLOWED - ours if not hasattr(SqlAlchemyStore, n))
    assert missing == []


@pytest.mark.parametrize("name", sorted(ALLOWED_READS))
def test_every_allowed_read_passes_the_guard(store: AppendOnlyTrackingStore, name: str) -> None:
    # Arguments are deliberately missing: whatever MLflow answers, it must not be us.
    errors: list[str] = []
    with contextlib.suppress(Exception):
        try:
            getattr(store, name)()
        except Exception as error:
            errors.append(str(error))
            raise
    assert not [e for e in errors if "append-only" in e]


def test_allowed_writes_on_a_running_run(store: AppendOnlyTrackingStore, experiment: str) -> None:
    run_id = new_run(store, experiment)
    store.log_param(run_id, Param("p", "1"))
    store.log_metric(run_id, Metric("m", 1.0, 5, 0))
    store.log_batch(run_id, [Metric("m", 2.0, 6, 1)], [Param("q", "2")], [RunTag("t", "v")])
    store.set_tag(run_id, RunTag("u", "w"))
    dataset = Dataset("train", "d1g3st", "local", "file:///data/train.csv")
    store.log_inputs(run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "train")])])
    store.log_outputs(run_id, [])
    store.update_run_info(run_id, RunStatus.RUNNING, None, "renamed")
    store.set_tag(run_id, RunTag("mlflow.runName", "renamed-by-tag"))
    assert store.get_run(run_id).info.run_name == "renamed-by-tag"
    store.update_run_info(run_id, RunStatus.RUNNING, None, "renamed")
    run = store.get_run(run_id)
    assert run.data.params == {"p": "1", "q": "2"}
    assert run.data.tags["t"] == "v"
    assert run.data.tags["u"] == "w"
    assert run.info.run_name == "renamed"
    assert run.inputs.dataset_inputs[0].dataset.digest == "d1g3st"
    assert [m.value for m in store.get_metric_history(run_id, "m")] == [1.0, 2.0]
    assert store.get_experiment(experiment).experiment_id == experiment
    assert store.search_runs([experiment], "", 1)[0].info.run_id == run_id


@contextlib.contextmanager
def statements(store: AppendOnlyTrackingStore) -> Iterator[list[str]]:
    """The SQL the store sends while the block runs."""
    import sqlalchemy

    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sqlalchemy.event.remove(store.engine, "before_cursor_execute", record)


def test_a_new_run_is_created_without_looking_up_its_inputs(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    keyed = [RunTag("mlaudit.trial_key", uuid.uuid4().hex)]
    for number, tags in enumerate(([], keyed, [])):
        with statements(store) as sent:
            run = store.create_run(experiment, "tester", 1_000, tags, "trial")
        assert run.inputs.dataset_inputs == []
        assert any("INSERT INTO runs" in s for s in sent)
        assert not [s for s in sent if "FROM inputs" in s]
        # The experiment is read once; found active, it stays so (no deletes here).
        assert bool([s for s in sent if "FROM experiments" in s]) == (number == 0)
        assert run.info.artifact_uri.endswith(f"/{run.info.run_id}/artifacts")
    # Everywhere else the inputs are still read: the run's, and its seal's record.
    run_id = run.info.run_id
    dataset = Dataset("train", "d1g3st", "local", "file:///data/train.csv")
    store.log_inputs(run_id, [DatasetInput(dataset, [])])
    for read in (
        lambda: store.get_run(run_id).inputs.dataset_inputs[0].dataset.digest == "d1g3st",
        lambda: store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None) is not None,
    ):
        with statements(store) as sent:
            assert read()
        assert [s for s in sent if "FROM inputs" in s]
    seal = store.seal_of(run_id)
    assert seal is not None
    assert recomputed_sha256(store, run_id) == seal.sha256


def test_a_run_in_an_experiment_deleted_behind_the_store_is_refused(
    store: AppendOnlyTrackingStore, experiment: str, db: sqlite3.Connection
) -> None:
    # The store refuses deletes; one made in the database directly is still seen by the
    # first create in the experiment (only an experiment found active is remembered).
    db.execute(
        "UPDATE experiments SET lifecycle_stage = 'deleted' WHERE experiment_id = ?",
        (int(experiment),),
    )
    with pytest.raises(MlflowException, match="must be in the 'active' state"):
        store.create_run(experiment, "tester", 1_000, [], "trial")


# -- sealing -------------------------------------------------------------------------


def test_ending_a_run_seals_it_with_a_recomputable_record(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    run_id = new_run(store, experiment)
    fill(store, run_id)
    store.log_metric(run_id, Metric("loss", float("nan"), 12, 2))
    store.set_tag(run_id, RunTag(run_record.ARTIFACTS_SHA256_TAG, "ab" * 32))
    info = store.update_run_info(run_id, RunStatus.FINISHED, 2_000, None)
    assert info.status == "FINISHED"
    seal = store.seal_of(run_id)
    assert seal is not None
    tags = store.get_run(run_id).data.tags
    assert tags[run_record.SEAL_SEQ_TAG] == str(seal.seq) == "0"
    assert tags[run_record.SEAL_SHA256_TAG] == seal.sha256
    assert recomputed_sha256(store, run_id) == seal.sha256


def test_seq_is_contiguous_per_experiment(store: AppendOnlyTrackingStore) -> None:
    first = str(store.create_experiment(f"a-{uuid.uuid4().hex}"))
    second = str(store.create_experiment(f"b-{uuid.uuid4().hex}"))
    for _ in range(3):
        sealed_run(store, first)
        sealed_run(store, second)
    assert [s.seq for s in store.seals(first)] == [0, 1, 2]
    assert [s.seq for s in store.seals(second)] == [0, 1, 2]


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.KILLED])
def test_every_terminal_status_seals(
    store: AppendOnlyTrackingStore, experiment: str, status: int
) -> None:
    run_id = new_run(store, experiment)
    store.update_run_info(run_id, status, None, None)
    seal = store.seal_of(run_id)
    assert seal is not None
    assert store.get_run(run_id).info.end_time is None  # as in MLflow: no end_time given
    assert recomputed_sha256(store, run_id) == seal.sha256


def test_a_running_run_may_go_back_to_scheduled_unsealed(
    store: AppendOnlyTrackingStore, experiment: str
) -> None:
    run_id = new_run(store, experiment)
    store.update_run_info(run_id, RunStatus.SCHEDULED, None, None)
    assert store.get_run(run_id).info.status == "SCHEDULED"
    assert store.seal_of(run_id) is None
    store.log_param(run_id, Param("after", "1"))  # MLflow accepts writes here too
    store.update_run_info(run_id, RunStatus.FINISHED, 9, None)
    assert store.seal_of(run_id) is not None


def test_seal_tags_cannot_be_forged(store: AppendOnlyTrackingStore, experiment: str) -> None:
    run_id = new_run(store, experiment)
    assert_refused(lambda: store.set_tag(run_id, RunTag(run_record.SEAL_SEQ_TAG, "0")))
    batch = [RunTag(run_record.SEAL_SEQ_TAG, "0")]
    assert_refused(lambda: store.log_batch(run_id, [], [], batch))
    store.update_run_info(run_id, RunStatus.FINISHED, 5, None)  # the real seal still lands
    assert store.seal_of(run_id) is not None
    forged = [RunTag(run_record.SEAL_SHA256_TAG, "0" * 64)]
    assert_refused(lambda: store.create_run(experiment, "u", 1, forged, "x"))


def _after_seal_calls(store: AppendOnlyTrackingStore, run_id: str) -> dict[str, Any]:
    dataset = DatasetInput(Dataset("d", "x", "local", "file:///d"), [])
    return {
        "log_param": lambda: store.log_param(run_id, Param("late", "1")),
        "log_metric": lambda: store.log_metric(run_id, Metric("loss", 9.0, 99, 9)),
        "log_batch": lambda: store.log_batch(run_id, [], [], [RunTag("late", "1")]),
        "set_tag": lambda: store.set_tag(run_id, RunTag("late", "1")),
        "rename": lambda: store.set_tag(run_id, RunTag("mlflow.runName", "new")),
        "delete_tag": lambda: store.delete_tag(run_id, "arm"),
        "log_inputs": lambda: store.log_inputs(run_id, [dataset]),
        "log_outputs": lambda: store.log_outputs(run_id, []),
        "update_run_info": lambda: store.update_run_info(run_id, RunStatus.FAILED, 3, None),
        "reopen": lambda: store.update_run_info(run_id, RunStatus.RUNNING, None, None),
        "update_run_name": lambda: store.update_run_info(run_id, None, None, "other"),
        "delete_run": lambda: store.delete_run(run_id),
        "restore_run": lambda: store.restore_run(run_id),
    }


@pytest.mark.parametrize("operation", sorted(_after_seal_calls(None, "").keys()))  # type: ignore[arg-type]
def test_a_sealed_run_refuses_every_change_naming_its_seal(
    store: AppendOnlyTrackingStore, experiment: str, operation: str
) -> None:
    run_id = sealed_run(store, experiment)
    seal = store.seal_of(run_id)
    assert seal is not None
    before = store.get_run(run_id).to_dictionary()
    message = assert_refused(
        _after_seal_calls(store, run_id)[operation],
        f"this run is sealed (experiment {experiment}, sequence {seal.seq}): ",
    )
    assert seal.sha256 not in message  # what the person did, not a bare hash
    assert store.get_run(run_id).to_dictionary() == before
    assert recomputed_sha256(store, run_id) == seal.sha256


@pytest.mark.parametrize(
    "operation", ["delete_experiment", "restore_experiment", "rename_experiment", "delete_run"]
)
def test_deletes_and_renames_are_refused_always(
    store: AppendOnlyTrackingStore, experiment: str, operation: str
) -> None:
    run_id = new_run(store, experiment)  # open, unsealed
    calls = {
        "delete_experiment": lambda: store.delete_experiment(experiment),
        "restore_experiment": lambda: store.restore_experiment(experiment),
        "rename_experiment": lambda: store.rename_experiment(experiment, "other"),
        "delete_run": lambda: store.delete_run(run_id),
    }
    assert_refused(calls[operation], " is refused: ", "append-only")
    assert store.get_run(run_id).info.lifecycle_stage == "active"
    assert store.get_experiment(experiment).lifecycle_stage == "active"


# -- triggers and the SQLite set-up --------------------------------------------------


def test_triggers_are_installed(store: AppendOnlyTrackingStore) -> None:
    names = triggers.installed_triggers(store.engine)
    assert "mlaudit_seals_no_update" in names
    assert "mlaudit_metrics_sealed_update" in names
    assert len(names) == len(triggers.sqlite_statements()) - 1  # minus CREATE TABLE


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE metrics SET value = 42 WHERE run_uuid = :run",
        "UPDATE latest_metrics SET value = 42 WHERE run_uuid = :run",
        "DELETE FROM metrics WHERE run_uuid = :run",
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
        "VALUES ('loss', 1.0, 5, :run, 7, 0)",
        "UPDATE params SET value = 'x' WHERE run_uuid = :run",
        "DELETE FROM params WHERE run_uuid = :run",
        "INSERT INTO params (key, value, run_uuid) VALUES ('new', 'x', :run)",
        "UPDATE tags SET value = 'x' WHERE run_uuid = :run",
        "DELETE FROM tags WHERE run_uuid = :run",
        "UPDATE runs SET status = 'RUNNING' WHERE run_uuid = :run",
        "DELETE FROM runs WHERE run_uuid = :run",
        "UPDATE mlaudit_seals SET sha256 = 'x' WHERE run_id = :run",
        "DELETE FROM mlaudit_seals WHERE run_id = :run",
    ],
)
def test_triggers_block_direct_changes_to_sealed_data(
    store: AppendOnlyTrackingStore, experiment: str, db: sqlite3.Connection, statement: str
) -> None:
    run_id = sealed_run(store, experiment)
    seal = store.seal_of(run_id)
    with pytest.raises(sqlite3.IntegrityError, match="mlaudit: "):
        db.execute(statement, {"run": run_id})
    assert store.seal_of(run_id) == seal
    assert recomputed_sha256(store, run_id) == seal.sha256  # type: ignore[union-attr]


def test_triggers_leave_open_runs_alone(
    store: AppendOnlyTrackingStore, experiment: str, db: sqlite3.Connection
) -> None:
    run_id = new_run(store, experiment)
    fill(store, run_id)
    db.execute("UPDATE params SET value = '0.2' WHERE run_uuid = ?", (run_id,))
    assert store.get_run(run_id).data.params["lr"] == "0.2"


def test_sqlite_runs_in_wal_mode(store: AppendOnlyTrackingStore, db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_plain_sqlite_uri_works_too(tmp_path: Path) -> None:
    plain = AppendOnlyTrackingStore(f"sqlite:///{tmp_path / 'plain.db'}", str(tmp_path))
    experiment = str(plain.create_experiment("plain"))
    run_id = sealed_run(plain, experiment)
    assert plain.seal_of(run_id) is not None


@pytest.mark.parametrize("operation", ["log_param", "log_metric", "log_batch", "set_tag"])
def test_a_write_racing_the_seal_is_stopped_by_the_trigger(
    store: AppendOnlyTrackingStore,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
) -> None:
    # The friendly early check passed just before the run was sealed: only the
    # database trigger stands between the late write and the sealed rows.
    run_id = sealed_run(store, experiment)
    seal = store.seal_of(run_id)
    assert seal is not None
    monkeypatch.setattr(AppendOnlyTrackingStore, "_check_writable", lambda *_: None)
    calls = {
        "log_param": lambda: store.log_param(run_id, Param("late", "1")),
        "log_metric": lambda: store.log_metric(run_id, Metric("late", 1.0, 5, 0)),
        "log_batch": lambda: store.log_batch(run_id, [], [Param("late", "1")], []),
        "set_tag": lambda: store.set_tag(run_id, RunTag("late", "1")),
    }
    assert_refused(calls[operation], f"this run is sealed (experiment {experiment}, sequence ")
    assert recomputed_sha256(store, run_id) == seal.sha256


def test_experiments_keep_the_served_artifact_store(
    store: AppendOnlyTrackingStore, tmp_path: Path
) -> None:
    assert_refused(
        lambda: store.create_experiment(f"x-{uuid.uuid4().hex}", str(tmp_path)),
        "custom artifact location",
    )
    served = store.create_experiment(f"y-{uuid.uuid4().hex}", "mlflow-artifacts:/custom")
    assert store.get_experiment(served).artifact_location == "mlflow-artifacts:/custom"


def test_one_run_per_idempotency_key(store: AppendOnlyTrackingStore) -> None:
    check_one_run_per_key(store)
