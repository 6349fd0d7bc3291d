"""Progress of a run: a rich bar with ETA on a terminal, plain lines in CI logs.

The runner reports through the small ProgressSink protocol; it never prints.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol, TextIO


class ProgressSink(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, trial: Mapping[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, trial: Mapping[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def finish(self) -> None:
        pass


def _describe(trial: Mapping[str, Any]) -> str:
    status = str(trial.get("status"))
    if trial.get("cached_from"):
        status = f"cached from {trial['cached_from']}"
    elif status == "succeeded" and trial.get("duration_seconds") is not None:
        status = f"succeeded in {float(trial['duration_seconds']):.1f}s"
    elif trial.get("reason"):
        status = f"{status}: {trial['reason']}"
    return f"{trial.get('trial_id')} {status}"


class LineProgress:
    """One line per finished trial, with a count and a rough ETA, for logs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self._resumed = 0
        self._started = time.monotonic()

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self._resumed = total, done, done
        self._started = time.monotonic()
        self.note(f"{total} trials, {done} already finished")

    def advance(self, trial: Mapping[str, Any]) -> None:
        self.done += 1
        ran = self.done - self._resumed
        elapsed = time.monotonic() - self._started
        eta = elapsed / ran * (self.total - self.done) if ran else 0.0
        self.note(f"[{self.done}/{self.total}] {_describe(trial)} (eta {eta:.0f}s)")

    def note(self, text: str) -> None:
        self.stream.write(f"mlaudit: {text}\n")
        self.stream.flush()

    def finish(self) -> None:
        pass


class RichProgress:
    """A live bar with counts, elapsed time and ETA (rich), on an interactive terminal."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=Console(file=stream),
            transient=False,
        )
        self._task: Any = None

    def start(self, total: int, done: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("", total=total, completed=done)

    def advance(self, trial: Mapping[str, Any]) -> None:
        self._progress.update(self._task, advance=1, description=_describe(trial)[:60])
        if trial.get("status") not in ("succeeded",):
            self._progress.console.print(f"{_describe(trial)}")

    def note(self, text: str) -> None:
        self._progress.console.print(text)

    def finish(self) -> None:
        self._progress.stop()
