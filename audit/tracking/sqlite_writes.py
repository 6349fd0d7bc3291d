"""One SQLite writer at a time, handed over at once: the server's write queue.

SQLite lets one transaction write at a time; the others wait in its busy handler,
which polls with sleeps growing to 100 ms. Under many loggers (shards of a study)
the database then sits idle while every waiter sleeps, and a server seals a few
trials a second. Here a write session first takes a lock the kernel hands to the
next waiter the moment it is released: a thread lock inside a server process, an
flock on a file beside the database between processes (uvicorn workers, a second
server on the same file). SQLite's own locking is unchanged underneath, so a writer
that does not take this lock (another tool on the file) is still kept apart by it,
and nothing here may ever decide what is written: only when.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Callable, Iterator
from typing import Any

SessionMaker = Callable[..., contextlib.AbstractContextManager[Any]]


class WriteQueue:
    """A re-entrant, cross-process exclusive lock for the write sessions of one database."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}.mlaudit-write.lock"
        self._threads = threading.Lock()
        self._local = threading.local()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        depth = int(getattr(self._local, "depth", 0))
        if depth:  # MLflow nests write sessions (log_batch): the outer one holds the lock
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        # A file opened for each hold: flock excludes open files, so one inherited
        # across a fork (uvicorn's workers) could not keep two processes apart.
        with self._threads, open(self.path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def queued_writes(make_session: SessionMaker, queue: WriteQueue) -> SessionMaker:
    """MLflow's session factory, with every write session (read_only=False) queued."""

    @contextlib.contextmanager
    def make_managed_session(read_only: bool = True) -> Iterator[Any]:
        if read_only:
            with make_session(read_only=read_only) as session:
                yield session
            return
        with queue.held(), make_session(read_only=read_only) as session:
            yield session

    return make_managed_session
