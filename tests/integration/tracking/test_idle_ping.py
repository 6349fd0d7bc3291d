"""Pooled PostgreSQL connections are pinged after sitting idle, not at every checkout.

On a real PostgreSQL server (fixture `postgres_uri`): a connection used a moment ago
goes out unpinged; one idle longer than IDLE_SECONDS is pinged, and replaced when the
server closed it; a connection that dies while trusted fails one statement only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy

from audit.tracking import idle_ping

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]


@pytest.fixture
def own_database(postgres_uri: str) -> Iterator[str]:
    """A database of its own: these tests close every session on it."""
    import uuid

    import psycopg

    name = f"mlaudit_ping_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{postgres_uri.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(postgres_uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def engine(own_database: str) -> Iterator[Any]:
    # As MLflow builds it: a ping at every checkout, which install() replaces.
    engine = sqlalchemy.create_engine(own_database, pool_pre_ping=True, pool_size=2)
    idle_ping.install(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pings(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        counted.append(1)
        return bool(real(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return counted


def one(engine: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sqlalchemy.text("SELECT 1")).scalar_one())


def terminate_others(database: str) -> int:
    """Close every other session on the database, as a server restart would."""
    import psycopg

    with psycopg.connect(database, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_a_connection_used_a_moment_ago_goes_out_without_a_ping(
    engine: Any, pings: list[int]
) -> None:
    assert engine.pool._pre_ping is False  # SQLAlchemy's own ping is off
    one(engine)
    assert len(pings) == 1  # a new connection: pinged once
    for _ in range(5):
        one(engine)
    assert len(pings) == 1


def test_an_idle_connection_is_pinged_and_replaced_when_the_server_closed_it(
    engine: Any, pings: list[int], own_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one(engine)
    assert terminate_others(own_database) >= 1
    monkeypatch.setattr(idle_ping, "IDLE_SECONDS", 0.0)  # every connection counts as idle
    assert one(engine) == 1  # the ping found it dead; the pool connected afresh
    assert len(pings) >= 2


def test_a_trusted_connection_that_died_fails_one_statement_only(
    engine: Any, pings: list[int], own_database: str
) -> None:
    one(engine)
    assert terminate_others(own_database) >= 1
    with pytest.raises(sqlalchemy.exc.OperationalError):
        one(engine)  # not pinged (used a moment ago): this request fails; clients retry
    assert one(engine) == 1  # the pool dropped the dead connection


def test_the_store_installs_it(postgres_uri: str, tmp_path: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from audit.tracking.store import AppendOnlyTrackingStore

        store = AppendOnlyTrackingStore(f"mlaudit+{postgres_uri}", str(tmp_path))
    assert store.engine.pool._pre_ping is False
    assert store.engine in idle_ping._INSTALLED
