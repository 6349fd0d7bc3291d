"""The run journal: an append-only, fsynced JSON-lines file in the out dir.

Every event is one line written with a single write() and made durable before
the runner moves on, so a SIGKILL loses at most the line being written; a torn
last line is ignored on reading and fenced off with a newline before appending.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

JOURNAL_NAME = "journal.jsonl"


class Journal:
    """`held=True`: events wait in memory until `release()` writes them (a run whose data
    check is still out); a journal closed while held writes nothing at all."""

    def __init__(self, path: Path, *, held: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._held: list[bytes] | None = [] if held else None
        self._fd = -1 if held else self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        if size:
            with self.path.open("rb") as handle:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    os.write(fd, b"\n")
        return fd

    def release(self) -> None:
        """Write the held events (one write, one fsync) and append directly from now on."""
        with self._lock:
            if self._held is None:
                return
            self._fd = self._open()
            os.write(self._fd, b"".join(self._held))
            os.fsync(self._fd)
            self._held = None

    def append(self, event: dict[str, Any], *, durable: bool = True) -> None:
        line = json.dumps(event, sort_keys=True, separators=(",", ":"), allow_nan=False)
        data = (line + "\n").encode("utf-8")
        with self._lock:
            if self._held is not None:
                self._held.append(data)
                return
            os.write(self._fd, data)
            if durable:
                os.fsync(self._fd)

    def sync(self) -> None:
        """Make every event appended so far durable (one fsync for a batch).

        The fsync runs outside the lock: a worker journaling that its trial started
        must not wait on the disk. Whatever was written before the call is covered;
        the duplicate keeps the descriptor valid should another thread close it meanwhile.
        """
        with self._lock:
            if self._fd < 0:
                return
            fd = os.dup(self._fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete event in order; a torn or garbled line (a crash mid-write) is skipped."""
    if not path.is_file():
        return []
    events = []
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events
