"""Ping a pooled database connection only when it sat idle, not on every checkout.

MLflow builds its engines with `pool_pre_ping=True`: every session first sends an
empty query and waits for PostgreSQL's answer. A trial takes about five sessions
on the server, so under load one request in four or five was a ping, each a round
trip after which the thread queues for the GIL again. A connection checked in a
moment ago is as alive as the server that just answered on it; one that sat idle
may have been closed by PostgreSQL (a restart, an idle timeout, a proxy), and is
pinged as before. A connection that dies while busy fails that one request: the
pool then drops every older connection, and clients retry server errors
(audit/tracking/retry.py).

This is SQLAlchemy's documented custom pessimistic ping: a checkout listener that
raises DisconnectionError makes the pool try a fresh connection (up to three times).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import sqlalchemy

# Seconds a pooled connection may sit unused and still be trusted without a ping.
IDLE_SECONDS = 5.0
_CHECKED_IN = "mlaudit_checked_in"
_INSTALLED: weakref.WeakSet[Any] = weakref.WeakSet()


def install(engine: Any) -> None:
    """Replace the engine's ping on every checkout by a ping after IDLE_SECONDS idle."""
    if engine in _INSTALLED:
        return
    dialect = engine.dialect

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is not None and time.monotonic() - checked_in < IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise sqlalchemy.exc.DisconnectionError(str(error)) from error
            raise

    # Engine-level pool events: they stay with the pool dispose() puts in its place,
    # and so does pre_ping (recreate() copies it).
    sqlalchemy.event.listen(engine, "checkin", _on_checkin)
    sqlalchemy.event.listen(engine, "checkout", on_checkout)
    engine.pool._pre_ping = False  # on_checkout pings instead
    _INSTALLED.add(engine)


def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info[_CHECKED_IN] = time.monotonic()
