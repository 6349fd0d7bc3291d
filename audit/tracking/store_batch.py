"""`log_batch` in one transaction with bulk inserts: what a trial's values cost the server.

MLflow's SQL store logs a batch through the ORM in four sessions (the run, params,
metrics, tags), each its own transaction and commit, building an ORM object per
metric point; for a trial of a few hundred points that is most of the server's work
per trial. Here the same batch is validated by MLflow's own validators and written
in one transaction: params and metric points as bulk INSERTs (points already present
are skipped, as MLflow skips them), the run's latest values and its tags read once and
updated where they change. What is stored, and every error a client can see, is
MLflow's; only the number of statements and commits differs, and the batch is now
all or nothing. Batches this does not cover (metrics of logged models, a run-name
tag) and any integrity error (a concurrent writer) go to MLflow's own path. It
decides nothing about seals: the caller checks the run is writable in the same
transaction, and the database triggers still refuse a write to a sealed run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlTag
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

# A metric point as stored: (key, value, timestamp, step, is_nan).
Point = tuple[str, float, int, int, bool]
_INFINITY = 1.7976931348623157e308  # MLflow stores +-inf as the largest float


def covers(metrics: Sequence[Any], tags: Sequence[Any]) -> bool:
    """Whether this path writes the batch exactly as MLflow would."""
    if any(getattr(m, "model_id", None) is not None for m in metrics):
        return False  # logged-model metrics: MLflow's own path
    return all(t.key != MLFLOW_RUN_NAME for t in tags)  # a rename: MLflow's set_tag


def validated(run_id: str, metrics: Any, params: Any, tags: Any) -> tuple[list[Any], ...]:
    """MLflow's own checks of a batch, in MLflow's order, with its messages."""
    from mlflow.utils.validation import (
        _validate_batch_log_data,
        _validate_batch_log_limits,
        _validate_param_keys_unique,
        _validate_run_id,
    )

    _validate_run_id(run_id)  # type: ignore[no-untyped-call]
    metrics, params, tags = _validate_batch_log_data(metrics, params, tags)  # type: ignore[no-untyped-call]
    _validate_batch_log_limits(metrics, params, tags)  # type: ignore[no-untyped-call]
    _validate_param_keys_unique(params)  # type: ignore[no-untyped-call]
    return list(metrics), list(params), list(tags)


def stored_points(metrics: Sequence[Any]) -> list[Point]:
    """Each distinct metric once (MLflow drops repeats in a batch), NaN and inf as stored."""
    points: list[Point] = []
    seen: set[Any] = set()
    for metric in metrics:
        if metric in seen:
            continue
        seen.add(metric)
        value = float(metric.value)
        is_nan = math.isnan(value)
        if is_nan:
            value = 0.0
        elif math.isinf(value):
            value = _INFINITY if value > 0 else -_INFINITY
        points.append((metric.key, value, int(metric.timestamp), int(metric.step), is_nan))
    return points


def latest_points(points: Sequence[Point]) -> dict[str, Point]:
    """Per key the point MLflow keeps as latest: highest (step, timestamp, value), first on ties."""
    latest: dict[str, Point] = {}
    for point in points:
        held = latest.get(point[0])
        if held is None or _rank(point) > _rank(held):
            latest[point[0]] = point
    return latest


def _rank(point: Point) -> tuple[int, int, float]:
    return point[3], point[2], point[1]


def write(
    session: Any,
    dialect: str,
    run_id: str,
    params: Sequence[Any],
    points: Sequence[Point],
    tags: Sequence[Any],
) -> None:
    """Params, metric points, latest values and tags of one run, in the session's transaction."""
    _insert_params(session, dialect, run_id, params)
    if points:
        _insert_points(session, dialect, run_id, points)
        _update_latest(session, dialect, run_id, latest_points(points))
    _set_tags(session, dialect, run_id, tags)


def _insert_params(session: Any, dialect: str, run_id: str, params: Sequence[Any]) -> None:
    if not params:
        return
    table = SqlParam.__table__
    keys = [p.key for p in params]
    existing = dict(
        session.execute(
            sqlalchemy.select(table.c.key, table.c.value).where(
                table.c.run_uuid == run_id, table.c.key.in_(keys)
            )
        ).all()
    )
    changed = [
        {"key": p.key, "old_value": existing[p.key], "new_value": p.value}
        for p in params
        if p.key in existing and existing[p.key] != p.value
    ]
    if changed:  # MLflow's wording, so clients see the same error
        raise MlflowException(
            "Changing param values is not allowed. Params were already"
            f" logged='{changed}' for run ID='{run_id}'.",
            INVALID_PARAMETER_VALUE,
        )
    fresh = [p for p in params if p.key not in existing]
    new = [{"run_uuid": run_id, "key": p.key, "value": p.value} for p in fresh]
    insert_rows(session, dialect, table, new)


def _insert_points(session: Any, dialect: str, run_id: str, points: Sequence[Point]) -> None:
    rows = [
        {"run_uuid": run_id, "key": k, "value": v, "timestamp": t, "step": s, "is_nan": n}
        for k, v, t, s, n in points
    ]
    # A point already stored (same key, value, timestamp, step) is skipped, as MLflow does.
    insert_rows(session, dialect, SqlMetric.__table__, rows, skip_present=True)


def insert_rows(
    session: Any,
    dialect: str,
    table: Any,
    rows: Sequence[dict[str, Any]],
    *,
    skip_present: bool = False,
) -> None:
    """INSERT many rows in one statement; with `skip_present`, rows whose key is stored are skipped.

    On PostgreSQL, one INSERT ... SELECT FROM unnest(arrays): psycopg's executemany
    would send (and the server plan) one statement per row.
    """
    if not rows:
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
        session.execute(statement.on_conflict_do_nothing() if skip_present else statement, rows)
        return
    if dialect != "postgresql":
        raise ValueError(f"mlaudit supports sqlite and postgresql, not {dialect}")
    postgresql = session.get_bind().dialect
    quote = postgresql.identifier_preparer.quote
    columns = list(rows[0])
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=postgresql)}[])" for name in columns
    )
    # Names only from MLflow's table models and this module's row keys, never from a client.
    into = f"{quote(table.name)} ({', '.join(quote(name) for name in columns)})"
    text = f"INSERT INTO {into} SELECT * FROM unnest({arrays})"  # noqa: S608
    if skip_present:
        text += " ON CONFLICT DO NOTHING"
    session.execute(sqlalchemy.text(text), {name: [row[name] for row in rows] for name in columns})


def _update_latest(session: Any, dialect: str, run_id: str, latest: dict[str, Point]) -> None:
    table = SqlLatestMetric.__table__
    query = (
        sqlalchemy.select(table.c.key, table.c.value, table.c.timestamp, table.c.step)
        .where(table.c.run_uuid == run_id, table.c.key.in_(sorted(latest)))
        .order_by(table.c.key)
    )
    if dialect == "postgresql":
        query = query.with_for_update()  # as MLflow: held until commit, in key order
    held = {key: (step, timestamp, value) for key, value, timestamp, step in session.execute(query)}
    new = []
    for key in sorted(latest):
        point = latest[key]
        row = {"value": point[1], "timestamp": point[2], "step": point[3], "is_nan": point[4]}
        if key not in held:
            new.append({"run_uuid": run_id, "key": key, **row})
        elif _rank(point) > held[key]:
            session.execute(
                sqlalchemy.update(table)
                .where(table.c.run_uuid == run_id, table.c.key == key)
                .values(**row)
            )
    insert_rows(session, dialect, table, new)


def _set_tags(session: Any, dialect: str, run_id: str, tags: Sequence[Any]) -> None:
    if not tags:
        return
    table = SqlTag.__table__
    wanted = {t.key: t.value for t in tags}  # a key given twice: the last value, as MLflow
    present = dict(
        session.execute(
            sqlalchemy.select(table.c.key, table.c.value).where(
                table.c.run_uuid == run_id, table.c.key.in_(sorted(wanted))
            )
        ).all()
    )
    for key in sorted(k for k in present if present[k] != wanted[k]):
        session.execute(
            sqlalchemy.update(table)
            .where(table.c.run_uuid == run_id, table.c.key == key)
            .values(value=wanted[key])
        )
    new = [
        {"run_uuid": run_id, "key": k, "value": v} for k, v in wanted.items() if k not in present
    ]
    insert_rows(session, dialect, table, new)


def integrity_error(error: MlflowException) -> bool:
    """A batch refused by a constraint (a concurrent writer): MLflow's path sorts it out."""
    return isinstance(error.__cause__, sqlalchemy.exc.IntegrityError)
