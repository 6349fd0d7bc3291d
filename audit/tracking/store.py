"""The append-only MLflow tracking store: an allow-list of operations and sealed runs.

MLflow loads it through the `mlflow.tracking_store` entry points `mlaudit+sqlite`
and `mlaudit+postgresql` (see audit/tracking/__init__.py). Before a run ends it
behaves like MLflow's own SQL store (logged models, traces, tags, datasets); it
must never let a sealed run, or anything the run produced, change, nor let any
operation through that is not on the allow-list: methods MLflow adds in a later
release are refused until someone reviews them. Refusal wording: store_policy.py.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import fcntl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from mlflow.entities import LifecycleStage, RunInfo, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS
from mlflow.store.tracking.dbmodels.models import (
    SqlLoggedModel,
    SqlLoggedModelTag,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from audit.tracking import idle_ping, key_index, store_batch, triggers
from audit.tracking import produced as run_outputs
from audit.tracking import record as run_record
from audit.tracking.runspec import (
    EXECUTION_KEY_TAG,
    IN_TRIAL_RUN,
    METRICS_SOURCE_TAG,
    ROLE_TAG,
    TRIAL_KEY_TAG,
    TRIAL_STATUS_TAG,
)
from audit.tracking.sqlite_writes import WriteQueue, queued_writes
from audit.tracking.store_outputs import ProducedWrites
from audit.tracking.store_policy import (
    ALLOWED,
    ALLOWED_READS,
    ALLOWED_WRITES,
    not_offered,
    policed,
    refusal,
    refuse_store_keys,
    refuse_store_tags,
    run_ended,
    sealed_refusal,
)

SCHEME_PREFIX = "mlaudit+"
# pg_advisory_lock(space, key): the space keeps run-creation locks apart from others.
_KEY_LOCK_SPACE = 0x6D6C61  # "mla"
_THREAD_LOCK = threading.Lock()
# Keyed creates under way at once in one server process, on PostgreSQL. Each holds up to
# three pooled connections (its key's lock, create_run's session, and the experiment
# lookup inside it); bounded so they can never hold the whole pool (MLflow's default
# 5 + 10 overflow) while waiting for more, and other requests hold one at a time.
_CREATES_AT_ONCE = threading.BoundedSemaphore(4)


# Refused operations whose first argument names a run: the refusal names its seal.
_RUN_FIRST_ARGUMENT = frozenset({"delete_run", "restore_run"})

# >0 while an allowed operation runs: MLflow's own methods call one another
# (create_run calls get_experiment), and only the outermost call is policed.
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("mlaudit_store_depth", default=0)
# True while MLflow's create_run runs. The run it makes has just been given its id, so it
# has no dataset inputs: MLflow's closing lookup of them (a three-table join and a round
# trip, about 4% of a server worker's CPU under a study's loggers) is skipped; and its
# experiment check reads an experiment already found active (see get_experiment).
_CREATING_RUN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mlaudit_creating_run", default=False
)


@dataclass(frozen=True)
class RunKey:
    """The idempotency key a run is created with: a trial's, or its execution's (parent)."""

    tag: str
    value: str
    role: str | None = None  # the parent shares its execution key with its trials

    @classmethod
    def of(cls, tags: Any) -> RunKey | None:
        values = {str(t.key): str(t.value) for t in tags or []}
        if TRIAL_KEY_TAG in values:
            return cls(TRIAL_KEY_TAG, values[TRIAL_KEY_TAG])
        if values.get(ROLE_TAG) == "execution" and EXECUTION_KEY_TAG in values:
            return cls(EXECUTION_KEY_TAG, values[EXECUTION_KEY_TAG], "execution")
        return None


@dataclass(frozen=True)
class Seal:
    """A sealed run: its place in its experiment's sequence and its record digest."""

    experiment_id: str
    seq: int
    run_id: str
    sha256: str
    sealed_at: int


def plain_db_uri(store_uri: str) -> str:
    """`mlaudit+sqlite:///x.db` -> `sqlite:///x.db` (what SQLAlchemy understands)."""
    return store_uri[len(SCHEME_PREFIX) :] if store_uri.startswith(SCHEME_PREFIX) else store_uri


def display_uri(store_uri: str) -> str:
    """The URI with any password masked, fit for logs and messages (scheme kept as given)."""
    try:
        url = sqlalchemy.engine.make_url(plain_db_uri(store_uri))
    except sqlalchemy.exc.ArgumentError:
        return store_uri
    shown = str(url.render_as_string(hide_password=True))
    return SCHEME_PREFIX + shown if store_uri.startswith(SCHEME_PREFIX) else shown


class AppendOnlyTrackingStore(ProducedWrites):
    """MLflow's SQL store with an allow-list of operations and sealed runs."""

    # The last store built in this process; the artifact guard asks it about seals.
    active: AppendOnlyTrackingStore | None = None

    def __init__(
        self,
        store_uri: str | None = None,
        artifact_uri: str | None = None,
        read_db_uri: str | None = None,
        *,
        db_uri: str | None = None,
        default_artifact_root: str | None = None,
    ) -> None:
        # MLflow's own keywords (db_uri=, default_artifact_root=) and ours both work,
        # so code and tests written for SqlAlchemyStore can build this store unchanged.
        uri = store_uri if store_uri is not None else db_uri
        if uri is None:
            raise TypeError("AppendOnlyTrackingStore needs a store URI (store_uri or db_uri)")
        root = artifact_uri if artifact_uri is not None else default_artifact_root
        plain = plain_db_uri(uri)
        if plain.startswith("sqlite"):
            _prepare_sqlite_engine(self._get_or_create_engine(plain))
        # read_db_uri is ignored on purpose: a replica could serve a run as unsealed.
        super().__init__(plain, root, read_db_uri=None)  # type: ignore[no-untyped-call]
        database = self.engine.url.database
        if self.db_type == "sqlite" and database and database != ":memory:":
            # Writers queue for the database instead of polling SQLite's busy handler.
            self.ManagedSessionMaker = queued_writes(self.ManagedSessionMaker, WriteQueue(database))
        if self.db_type == "postgresql":
            idle_ping.install(self.engine)
        triggers.ensure_installed(self.engine)
        key_index.ensure_installed(self.engine)
        # Experiments create_run found active, by id (see get_experiment).
        self._active_experiments: dict[str, Any] = {}
        type(self).active = self

    # -- the allow-list ---------------------------------------------------------

    def __getattribute__(self, name: str) -> Any:
        attribute = object.__getattribute__(self, name)
        if name.startswith("_") or _DEPTH.get() > 0:
            return attribute
        if not callable(getattr(type(self), name, None)) or isinstance(attribute, type):
            return attribute  # plain attributes (engine, db_type) and nested classes
        if name in ALLOWED:
            return policed(attribute, _DEPTH)
        return _refuser(self, name)

    def _refuse(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        run_id = kwargs.get("run_id") or (args[0] if args else None)
        if name in _RUN_FIRST_ARGUMENT and isinstance(run_id, str):
            seal = self.seal_of(run_id)
            if seal is not None:
                raise sealed_refusal(seal, name)
        raise not_offered(name)

    # -- run writes: only on an unsealed run ------------------------------------------

    def _check_writable(self, run_id: str, what: str) -> None:
        # A friendly early answer; the database triggers close the race with a sealer.
        with self.ManagedSessionMaker() as session:
            _check_writable_in(session, run_id, what)

    @contextlib.contextmanager
    def _run_write(self, run_id: str, what: str) -> Iterator[None]:
        self._check_writable(run_id, what)
        with self._sealed_race(run_id, what):
            yield

    @contextlib.contextmanager
    def _sealed_race(self, run_id: str, what: str) -> Iterator[None]:
        try:
            yield
        except MlflowException as error:
            # A write that raced the seal is stopped by the database trigger.
            if triggers.SEALED_MESSAGE in str(error.message):
                seal = self.seal_of(run_id)
                if seal is not None:
                    raise sealed_refusal(seal, what) from error
            raise

    def log_param(self, run_id: str, param: Any) -> Any:
        with self._run_write(run_id, "log_param"):
            return super().log_param(run_id, param)  # type: ignore[no-untyped-call]

    def log_metric(self, run_id: str, metric: Any) -> Any:
        with self._run_write(run_id, "log_metric"):
            return super().log_metric(run_id, metric)  # type: ignore[no-untyped-call]

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> Any:
        batch = _bulk_batch(run_id, metrics, params, tags)
        if batch is not None:
            try:
                with self._sealed_race(run_id, "log_batch"):
                    return self._log_batch_at_once(run_id, *batch)
            except MlflowException as error:
                # A concurrent writer's rows (or a trigger): MLflow's path sorts them out.
                if not store_batch.integrity_error(error):
                    raise
                if triggers.SEALED_MESSAGE in str(error.message):
                    raise
        with self._run_write(run_id, "log_batch"):
            refuse_store_tags(tags)
            return super().log_batch(run_id, metrics, params, tags)  # type: ignore[no-untyped-call]

    def _log_batch_at_once(
        self, run_id: str, points: list[store_batch.Point], params: list[Any], tags: list[Any]
    ) -> None:
        # One transaction: the writable check, the run's state and every row of the batch.
        with self.ManagedSessionMaker(read_only=False) as session:
            _refuse_sealed(session, run_id, "log_batch")
            # One read of the run answers both the ended check and MLflow's active check.
            run = self._get_run(run_uuid=run_id, session=session)  # type: ignore[no-untyped-call]
            _refuse_ended(run.status, "log_batch")
            self._check_run_is_active(run)  # type: ignore[no-untyped-call]
            store_batch.write(session, self.db_type, run_id, params, points, tags)

    def set_tag(self, run_id: str, tag: Any) -> Any:
        what = "rename" if tag.key == MLFLOW_RUN_NAME else "set_tag"
        with self._run_write(run_id, what):
            refuse_store_tags([tag])
            return super().set_tag(run_id, tag)  # type: ignore[no-untyped-call]

    def delete_tag(self, run_id: str, key: str) -> Any:
        with self._run_write(run_id, "delete_tag"):
            refuse_store_keys([key])
            return super().delete_tag(run_id, key)  # type: ignore[no-untyped-call]

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> Any:
        with self._run_write(run_id, "record_logged_model"):
            return super().record_logged_model(run_id, mlflow_model)  # type: ignore[no-untyped-call]

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        with self._run_write(run_id, "link_traces_to_run"):
            super().link_traces_to_run(trace_ids, run_id)

    def unlink_traces_from_run(self, trace_ids: list[str], run_id: str) -> None:
        with self._run_write(run_id, "unlink_traces_from_run"):
            super().unlink_traces_from_run(trace_ids, run_id)

    # -- experiment tags: outside the sealed record ------------------------------------

    def set_experiment_tag(self, experiment_id: str, tag: Any) -> Any:
        return super().set_experiment_tag(experiment_id, tag)  # type: ignore[no-untyped-call]

    def delete_experiment_tag(self, experiment_id: str, key: str) -> Any:
        return super().delete_experiment_tag(experiment_id, key)  # type: ignore[no-untyped-call]

    def log_inputs(self, run_id: str, datasets: Any = None, models: Any = None) -> Any:
        with self._run_write(run_id, "log_inputs"):
            return super().log_inputs(run_id, datasets=datasets, models=models)

    def log_outputs(self, run_id: str, models: Any) -> Any:
        with self._run_write(run_id, "log_outputs"):
            return super().log_outputs(run_id, models)

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: Any = None
    ) -> Any:
        # Artifacts must go through the served, write-once store: a custom location
        # (a local path, a bucket) would let clients overwrite them behind its back.
        if artifact_location and not artifact_location.startswith("mlflow-artifacts:"):
            raise refusal(
                "a custom artifact location is refused: experiments keep this server's "
                "write-once artifact store (leave artifact_location unset)"
            )
        return super().create_experiment(name, artifact_location, tags)  # type: ignore[no-untyped-call]

    def create_run(
        self, experiment_id: str, user_id: str, start_time: int, tags: Any, run_name: str
    ) -> Any:
        refuse_store_tags(tags)
        key = RunKey.of(tags)
        if key is None:
            return self._new_run(experiment_id, user_id, start_time, tags, run_name)
        # A run with an idempotency key exists at most once per experiment. Clients
        # search before they create, but two of them (shards starting together) can
        # both find nothing: the check and the insert are serialised per key here.
        with self._creating(experiment_id, key):
            taken = self._run_holding(experiment_id, key)
            if taken is not None:
                raise MlflowException(
                    f"mlaudit: run {taken} already holds {key.tag}={key.value} in experiment "
                    f"{experiment_id}; log to it instead of creating another",
                    error_code=RESOURCE_ALREADY_EXISTS,
                )
            return self._new_run(experiment_id, user_id, start_time, tags, run_name)

    def _new_run(
        self, experiment_id: str, user_id: str, start_time: int, tags: Any, run_name: str
    ) -> Any:
        creating = _CREATING_RUN.set(True)
        try:
            return super().create_run(experiment_id, user_id, start_time, tags, run_name)  # type: ignore[no-untyped-call]
        finally:
            _CREATING_RUN.reset(creating)

    def get_experiment(self, experiment_id: str) -> Any:
        if not _CREATING_RUN.get():
            return super().get_experiment(experiment_id)  # type: ignore[no-untyped-call]
        # create_run reads only the experiment's lifecycle stage and artifact location.
        # This store refuses deleting, restoring and renaming experiments, so one found
        # active stays active with the same location: no session and queries per run.
        key = str(experiment_id)
        experiment = self._active_experiments.get(key)
        if experiment is None:
            experiment = super().get_experiment(experiment_id)  # type: ignore[no-untyped-call]
            if experiment.lifecycle_stage == LifecycleStage.ACTIVE:
                self._active_experiments[key] = experiment
        return experiment

    def _get_run_inputs(self, session: Any, run_uuids: list[str]) -> list[list[Any]]:
        if _CREATING_RUN.get():
            return [[] for _ in run_uuids]
        inputs: list[list[Any]] = super()._get_run_inputs(session, run_uuids)  # type: ignore[no-untyped-call]
        return inputs

    @contextlib.contextmanager
    def _creating(self, experiment_id: str, key: RunKey) -> Iterator[None]:
        if self.db_type == "postgresql":
            # Creators of one key wait for each other (across server processes too);
            # creators of different keys go side by side, a few at a time (see above).
            with _CREATES_AT_ONCE, self._key_lock(experiment_id, key):
                yield
            return
        with _THREAD_LOCK:
            # SQLite: the server's workers may be processes; a lock file beside the database.
            database = self.engine.url.database
            if not database or database == ":memory:":
                yield
                return
            with open(f"{database}.mlaudit-create.lock", "a+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _key_lock(self, experiment_id: str, key: RunKey) -> Iterator[None]:
        # A session-level lock on its own connection: held while create_run commits on
        # another, so the next creator of the key sees the committed run.
        lock = zlib.crc32(f"{experiment_id}:{key.tag}:{key.value}".encode())
        params = {"n": _KEY_LOCK_SPACE, "k": lock - 2**32 if lock >= 2**31 else lock}
        with self._autocommit() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:n, :k)"), params)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:n, :k)"), params)

    @contextlib.contextmanager
    def _autocommit(self) -> Iterator[Any]:
        """A pooled PostgreSQL connection without a transaction, for single statements.

        A session costs a BEGIN and a COMMIT (or ROLLBACK) round trip around its
        statement; and psycopg drops its prepared statements at every ROLLBACK, with a
        round trip of its own, so a session ended by one re-prepares its next queries.
        """
        with self.engine.connect() as connection:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")

    def _single_read(self) -> contextlib.AbstractContextManager[Any]:
        """Where one read statement runs: without a transaction on PostgreSQL (see
        _autocommit), in a session on SQLite (whose sessions are queued, sqlite_writes)."""
        if self.db_type == "postgresql":
            return self._autocommit()
        return self.ManagedSessionMaker()  # type: ignore[no-any-return]

    def _run_holding(self, experiment_id: str, key: RunKey) -> str | None:
        query = (
            "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "  # noqa: S608
            "WHERE r.experiment_id = :e AND r.lifecycle_stage = 'active' "
            f"AND {key_index.value_match(self.db_type, key.tag)}"
        )
        params: dict[str, Any] = {"e": int(experiment_id), "v": key.value}
        if key.role is not None:
            query += (
                " AND EXISTS (SELECT 1 FROM tags x WHERE x.run_uuid = r.run_uuid"
                " AND x.key = :rk AND x.value = :rv)"
            )
            params |= {"rk": ROLE_TAG, "rv": key.role}
        statement = sqlalchemy.text(query + " ORDER BY r.start_time, r.run_uuid LIMIT 1")
        with self._single_read() as reader:
            found = reader.execute(statement, params).scalar()
        return None if found is None else str(found)

    # -- ending a run seals it ------------------------------------------------------

    def update_run_info(
        self, run_id: str, run_status: Any, end_time: int | None, run_name: str | None
    ) -> Any:
        status = RunStatus.to_string(run_status) if run_status is not None else None
        what = "rename" if run_name else "reopen"
        # No early check in a session of its own: the sealing transaction checks the
        # seal and the status itself, under the run's lock, and answers the same way.
        with self._sealed_race(run_id, what):
            for attempt in range(5):
                try:
                    return self._update_and_seal(run_id, status, end_time, run_name)
                except MlflowException as error:
                    # Two sealers took the same seq (only possible without the advisory
                    # lock): the primary key refused one; a new attempt reads the new max.
                    collided = isinstance(error.__cause__, sqlalchemy.exc.IntegrityError)
                    if not collided or triggers.SEALS_TABLE not in str(error.message):
                        raise
                    if attempt == 4:
                        raise
        raise AssertionError("unreachable")

    def _update_and_seal(
        self, run_id: str, status: str | None, end_time: int | None, run_name: str | None
    ) -> Any:
        with self.ManagedSessionMaker(read_only=False) as session:
            self._lock_for_write(session, run_id)
            run = self._get_run(run_uuid=run_id, session=session)  # type: ignore[no-untyped-call]
            self._check_run_is_active(run)  # type: ignore[no-untyped-call]
            seal = _seal_row(session, run_id)
            what = "rename" if run_name else "reopen"
            if seal is not None:  # sealed between the check and the lock
                raise sealed_refusal(seal, what)
            if run.status in run_record.TERMINAL_STATUSES:
                raise run_ended(str(run.status), what)
            if status in run_record.TERMINAL_STATUSES and _ended_by_mlaudit(session, run_id):
                # The trial's script ending its run (end_run, or MLflow's atexit hook): the
                # run stays open for mlaudit to read back, log the outcome and seal.
                return _run_info(session, run)
            if status is not None:
                run.status = status
            if end_time is not None:
                run.end_time = end_time
            if run_name:
                run.name = run_name
                session.merge(SqlTag(run_uuid=run_id, key=MLFLOW_RUN_NAME, value=run_name))
            session.flush()
            if status in run_record.TERMINAL_STATUSES:
                # Like MLflow, an end without end_time leaves it NULL (the record says null).
                # Nothing after the seal reads the database: its lock is held to the commit.
                self._seal(session, run)
                return _run_info(session, run)
            session.flush()
            session.expire(run)
            return _run_info(session, run)

    def _lock_for_write(self, session: Any, run_id: str) -> None:
        if self.db_type == "sqlite":
            # Take the write lock now, before reading: every writer is serialised, so
            # the record and the next seq are read from a database no one else changes.
            session.execute(sqlalchemy.text("BEGIN IMMEDIATE"))
        else:
            session.execute(
                sqlalchemy.text("SELECT 1 FROM runs WHERE run_uuid = :r FOR UPDATE"), {"r": run_id}
            )

    def _seal(self, session: Any, run: Any) -> Seal:
        experiment_id = str(run.experiment_id)
        # The run's rows can no longer change: its row is locked (FOR UPDATE, or
        # SQLite's write lock) and the triggers make every write to them wait for that
        # lock. So all but the sequence number is read before the experiment's seal
        # lock: concurrent sealers wait on each other only for the seq and the inserts.
        self._digest_models(session, run.run_uuid)
        data = self._record_input(session, run)
        # The record too, all but the sealed tag's text (it names the seq): under the
        # lock only that text is encoded and the bytes hashed.
        pending = run_record.PendingRecord.of(data, run_record.SEALED_TAG)
        if self.db_type == "postgresql":
            key = zlib.crc32(f"mlaudit-seal:{experiment_id}".encode())
            session.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        seq = session.execute(
            sqlalchemy.text(
                f"SELECT COALESCE(MAX(seq), -1) + 1 FROM {triggers.SEALS_TABLE} "  # noqa: S608 (constant)
                "WHERE experiment_id = :e"
            ),
            {"e": experiment_id},
        ).scalar_one()
        # Written before the digest, so the record covers it (as if read back).
        sealed_text = _sealed_text(int(seq))
        data = dataclasses.replace(data, tags={**data.tags, run_record.SEALED_TAG: sealed_text})
        record = (
            pending.record(sealed_text) if pending is not None else run_record.record_bytes(data)
        )
        digest = run_record.record_sha256(record)
        seal = Seal(experiment_id, int(seq), run.run_uuid, digest, int(time.time() * 1000))
        # Tags first: the trigger refuses any row of a run once its seal row exists. They
        # are new rows (clients may not set them, store_policy.py) and go in one flush:
        # every round trip here is made holding the experiment's seal lock.
        session.add(SqlTag(run_uuid=seal.run_id, key=run_record.SEALED_TAG, value=sealed_text))
        session.add(SqlTag(run_uuid=seal.run_id, key=run_record.SEAL_SEQ_TAG, value=str(seal.seq)))
        session.add(SqlTag(run_uuid=seal.run_id, key=run_record.SEAL_SHA256_TAG, value=digest))
        if data.models or data.trace_ids:
            session.add(
                SqlTag(
                    run_uuid=seal.run_id,
                    key=run_record.SEAL_FORMAT_TAG,
                    value=run_record.RECORD_FORMAT_WITH_OUTPUTS,
                )
            )
        session.flush()
        session.execute(
            sqlalchemy.text(
                f"INSERT INTO {triggers.SEALS_TABLE} "  # noqa: S608 (constant)
                "(experiment_id, seq, run_id, sha256, sealed_at) VALUES (:e, :s, :r, :h, :t)"
            ),
            {"e": experiment_id, "s": seal.seq, "r": seal.run_id, "h": digest, "t": seal.sealed_at},
        )
        return seal

    def _digest_models(self, session: Any, run_id: str) -> None:
        # Each model the run produced gets the digest of its artifacts, when they are
        # local to the server (object stores rely on their retention lock instead).
        models = session.query(SqlLoggedModel).filter(SqlLoggedModel.source_run_id == run_id)
        for model in models:
            digest = run_outputs.model_artifacts_sha256(model.artifact_location)
            if digest is not None:
                session.merge(
                    SqlLoggedModelTag(
                        model_id=model.model_id,
                        experiment_id=model.experiment_id,
                        tag_key=run_record.MODEL_ARTIFACTS_SHA256_TAG,
                        tag_value=digest,
                    )
                )
        session.flush()

    def _record_input(self, session: Any, run: Any) -> run_record.RunRecordInput:
        run_id = run.run_uuid
        params = session.query(SqlParam.key, SqlParam.value).filter(SqlParam.run_uuid == run_id)
        tags = session.query(SqlTag.key, SqlTag.value).filter(SqlTag.run_uuid == run_id)
        points = session.query(
            SqlMetric.key, SqlMetric.step, SqlMetric.timestamp, SqlMetric.value, SqlMetric.is_nan
        ).filter(SqlMetric.run_uuid == run_id)
        history: dict[str, list[run_record.MetricPoint]] = {}
        for key, step, timestamp, value, is_nan in points:
            history.setdefault(key, []).append(
                (int(step), int(timestamp), float("nan") if is_nan else float(value))
            )
        datasets = [
            run_record.DatasetRef(
                name=d.dataset.name,
                digest=d.dataset.digest,
                source_type=d.dataset.source_type,
                source=d.dataset.source,
                tags={t.key: t.value for t in d.tags or []},
            )
            for d in self._get_run_inputs(session=session, run_uuids=[run_id])[0]
        ]
        outputs = run_outputs.from_session(session, run_id)
        for model in outputs.models:
            session.refresh(model)  # the digest tag was just written
        return run_record.RunRecordInput(
            run_id=run_id,
            experiment_id=str(run.experiment_id),
            status=run.status,
            start_time=run.start_time,
            end_time=run.end_time,
            params=dict(params.all()),
            tags={k: "" if v is None else v for k, v in tags},
            metric_history=history,
            run_name=run.name or "",
            artifact_uri=run.artifact_uri or "",
            datasets=datasets,
            models=[run_record.model_ref(m.to_mlflow_entity()) for m in outputs.models],
            trace_ids=outputs.trace_ids,
        )

    # -- seals ---------------------------------------------------------------------

    def seal_of(self, run_id: str) -> Seal | None:
        """The seal of a run, or None while it is open (or unknown)."""
        with self._single_read() as reader:  # asked before every artifact upload
            return _seal_row(reader, run_id)

    def seal_of_model(self, model_id: str) -> Seal | None:
        """The seal of the run that produced a logged model, or None."""
        with self.ManagedSessionMaker() as session:
            run_id = (
                session.query(SqlLoggedModel.source_run_id)
                .filter(SqlLoggedModel.model_id == model_id)
                .scalar()
            )
            return None if run_id is None else _seal_row(session, str(run_id))

    def seals(self, experiment_id: str) -> list[Seal]:
        """Every seal of an experiment in sequence order."""
        with self.ManagedSessionMaker() as session:
            rows = session.execute(
                sqlalchemy.text(
                    "SELECT experiment_id, seq, run_id, sha256, sealed_at FROM "  # noqa: S608
                    f"{triggers.SEALS_TABLE} WHERE experiment_id = :e ORDER BY seq"
                ),
                {"e": str(experiment_id)},
            )
            return [Seal(str(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]


def _sealed_text(seq: int) -> str:
    # The UI shows tags on the run page: this one tells a person plainly that the
    # run can no longer change (the seal tags beside it are for machines).
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"sealed (sequence {seq}) at {when}: this run and its models can no longer change"


def _run_info(session: Any, run: Any) -> RunInfo:
    """What `run.to_mlflow_entity().info` gives, without loading the run's data to drop it."""
    info = RunInfo(
        run_id=run.run_uuid,
        run_name=run.name,
        experiment_id=str(run.experiment_id),
        user_id=run.user_id,
        status=run.status,
        start_time=run.start_time,
        end_time=run.end_time,
        lifecycle_stage=run.lifecycle_stage,
        artifact_uri=run.artifact_uri,
    )
    if not info.run_name:  # as MLflow: a run without a name takes its name tag's
        name = (
            session.query(SqlTag.value)
            .filter(SqlTag.run_uuid == run.run_uuid, SqlTag.key == MLFLOW_RUN_NAME)
            .scalar()
        )
        if name:
            info._set_run_name(name)  # type: ignore[no-untyped-call]
    return info


def _check_writable_in(session: Any, run_id: str, what: str) -> None:
    _refuse_sealed(session, run_id, what)
    _refuse_ended(session.query(SqlRun.status).filter(SqlRun.run_uuid == run_id).scalar(), what)


def _refuse_sealed(session: Any, run_id: str, what: str) -> None:
    seal = _seal_row(session, run_id)
    if seal is not None:
        raise sealed_refusal(seal, what)


def _refuse_ended(status: str | None, what: str) -> None:
    if status in run_record.TERMINAL_STATUSES:
        raise run_ended(str(status), what)


def _bulk_batch(
    run_id: str, metrics: Any, params: Any, tags: Any
) -> tuple[list[store_batch.Point], list[Any], list[Any]] | None:
    """A batch for the one-transaction path, validated; None: MLflow's path, whose checks
    (the seal first, then store tags, then MLflow's validation) give the error in order."""
    metrics, params, tags = list(metrics or []), list(params or []), list(tags or [])
    if not store_batch.covers(metrics, tags):
        return None
    try:
        refuse_store_tags(tags)
        metrics, params, tags = store_batch.validated(run_id, metrics, params, tags)
    except MlflowException:
        return None
    return store_batch.stored_points(metrics), params, tags


def _ended_by_mlaudit(session: Any, run_id: str) -> bool:
    """A trial that logs into its own run, whose outcome mlaudit has not logged yet."""
    tags = dict(
        session.query(SqlTag.key, SqlTag.value).filter(
            SqlTag.run_uuid == run_id, SqlTag.key.in_([METRICS_SOURCE_TAG, TRIAL_STATUS_TAG])
        )
    )
    return tags.get(METRICS_SOURCE_TAG) == IN_TRIAL_RUN and TRIAL_STATUS_TAG not in tags


def _seal_row(session: Any, run_id: str) -> Seal | None:
    row = session.execute(
        sqlalchemy.text(
            "SELECT experiment_id, seq, run_id, sha256, sealed_at FROM "  # noqa: S608
            f"{triggers.SEALS_TABLE} WHERE run_id = :r"
        ),
        {"r": run_id},
    ).one_or_none()
    if row is None:
        return None
    return Seal(str(row[0]), int(row[1]), str(row[2]), str(row[3]), int(row[4]))


def _refuser(store: AppendOnlyTrackingStore, name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        token = _DEPTH.set(_DEPTH.get() + 1)
        try:
            store._refuse(name, args, kwargs)
        finally:
            _DEPTH.reset(token)

    refuse.__name__ = name
    return refuse


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _prepare_sqlite_engine(engine: Any) -> None:
    """WAL and a busy timeout on every connection: concurrent writers wait, never fail."""
    if not sqlalchemy.event.contains(engine, "connect", _on_sqlite_connect):
        sqlalchemy.event.listen(engine, "connect", _on_sqlite_connect)
        engine.dispose()  # connections made before the listener get it on reconnect


# Kept importable for callers that build tags for a run (the seal tag names live in record).
__all__ = [
    "ALLOWED",
    "ALLOWED_READS",
    "ALLOWED_WRITES",
    "AppendOnlyTrackingStore",
    "RunTag",
    "Seal",
    "display_uri",
    "plain_db_uri",
    "refusal",
]
