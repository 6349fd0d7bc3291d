"""The SQLite write queue: one writer at a time, across threads and processes, re-entrant."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.tracking.sqlite_writes import WriteQueue, queued_writes


def _hold_from_another_process(database: str, held: Any, release: Any) -> None:
    queue = WriteQueue(database)
    with queue.held():
        held.set()
        release.wait(30)


def test_a_second_thread_waits_until_the_writer_is_done(tmp_path: Path) -> None:
    queue = WriteQueue(str(tmp_path / "mlflow.db"))
    inside: list[str] = []

    def second() -> None:
        with queue.held():
            inside.append("second")

    with queue.held():
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.3)
        assert inside == []  # still waiting
        inside.append("first")
    thread.join(10)
    assert inside == ["first", "second"]


def test_nested_write_sessions_of_one_thread_do_not_wait_on_themselves(tmp_path: Path) -> None:
    queue = WriteQueue(str(tmp_path / "mlflow.db"))
    with queue.held(), queue.held(), queue.held():
        pass
    with queue.held():  # released at the outermost exit
        pass


def test_another_process_is_kept_out_by_the_lock_file(tmp_path: Path) -> None:
    database = str(tmp_path / "mlflow.db")
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    other = context.Process(target=_hold_from_another_process, args=(database, held, release))
    other.start()
    try:
        assert held.wait(60)
        queue = WriteQueue(database)
        got = threading.Event()

        def take() -> None:
            with queue.held():
                got.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert not got.wait(0.3)  # the other process holds it
        release.set()
        assert got.wait(30)
        thread.join(10)
    finally:
        release.set()
        other.join(30)


def test_only_write_sessions_queue(tmp_path: Path) -> None:
    queue = WriteQueue(str(tmp_path / "mlflow.db"))
    opened: list[bool] = []

    @contextlib.contextmanager
    def sessions(read_only: bool = True) -> Iterator[str]:
        opened.append(read_only)
        yield "session"

    make = queued_writes(sessions, queue)
    with queue.held():  # a writer in another thread would make a write session wait...
        done = threading.Event()

        def read() -> None:
            with make() as session:  # ...but a read goes straight through
                assert session == "session"
            done.set()

        threading.Thread(target=read).start()
        assert done.wait(10)
    started = time.monotonic()
    with make(read_only=False):
        pass
    assert time.monotonic() - started < 5
    assert opened == [True, False]
