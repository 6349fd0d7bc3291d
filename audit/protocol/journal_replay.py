"""Reading a run journal back, for --resume: what finished, what is left, may it resume.

Replaying the events says which trials finished (never to run again), which were
already logged to tracking, the determinism re-run's result, the wall time earlier
sessions spent, and which trials a killed runner left mid-flight. A resume must be
the same run: the journal's header names the EDD, plan, provenance and shard it
was started for. This module reads and appends journal events only; it runs and
kills nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import UsageError
from audit.protocol.journal import Journal, read_journal
from audit.protocol.results import utc_now

# The header fields a resumed run must match, and what a change of each means.
IDENTITY = {
    "edd_digest": "the EDD",
    "plan_sha256": "the plan",
    "provenance_fingerprint": "the code, data or environment",
    "shard": "the shard",
}


@dataclass
class Replay:
    """What the journal of earlier sessions says (all empty for a fresh out dir)."""

    finished: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracked: set[str] = field(default_factory=set)
    reproducibility: dict[str, Any] | None = None
    wall_seconds: float = 0.0
    header: dict[str, Any] | None = None
    # `submitted`/`started` events with no `finished`: trials a killed runner left mid-flight.
    in_flight: list[dict[str, Any]] = field(default_factory=list)

    def executed_trials(self) -> int:
        """Trials earlier sessions ran (not taken from the cache): budget already spent."""
        executed = sum(1 for r in self.finished.values() if r.get("attempts", 0) > 0)
        if self.reproducibility and self.reproducibility.get("attempts", 1):
            executed += 1
        return executed

    def untracked(self) -> list[str]:
        """Finished trials whose logging to tracking was not journaled: log them again."""
        return [trial_id for trial_id in self.finished if trial_id not in self.tracked]


def replay_journal(path: Path) -> Replay:
    replay = Replay()
    started: dict[str, dict[str, Any]] = {}
    session_start: float | None = None
    last_stamp: float | None = None
    for event in read_journal(path):
        kind = event.get("event")
        stamp = event.get("monotonic_wall")
        if kind == "header" and replay.header is None:
            replay.header = event
        if kind == "session":
            if session_start is not None and last_stamp is not None:
                replay.wall_seconds += max(0.0, last_stamp - session_start)
            session_start, last_stamp = float(event.get("wall_offset", 0.0)), None
        if isinstance(stamp, (int, float)):
            last_stamp = float(stamp)
        if kind == "submitted":  # a new attempt handed to an engine (Ray)
            started[str(event["trial_id"])] = event
        elif kind == "started":
            # Keeps the attempt's submission token: the resume sweeps by it too.
            trial_id = str(event["trial_id"])
            started[trial_id] = {**started.get(trial_id, {}), **event}
        elif kind == "finished":
            record = dict(event["trial"])
            replay.finished[record["trial_id"]] = record
            started.pop(record["trial_id"], None)
        elif kind == "tracked":
            replay.tracked.add(str(event["trial_id"]))
            if event["trial_id"] in replay.finished:
                replay.finished[event["trial_id"]]["mlflow_run_id"] = event.get("mlflow_run_id")
        elif kind == "reproducibility":
            replay.reproducibility = dict(event["result"])
    if session_start is not None and last_stamp is not None:
        replay.wall_seconds += max(0.0, last_stamp - session_start)
    replay.in_flight = list(started.values())
    return replay


def check_resume(
    replay: Replay, identity: Mapping[str, Any], *, resume: bool, out_dir: Path
) -> None:
    """An out dir that holds a run is resumed only when asked, and only by the same run."""
    if replay.header is None:
        return
    if not resume:
        if (out_dir / "results.json").is_file():
            raise UsageError(
                f"{out_dir} already holds a finished run (results.json): choose a fresh --out "
                "(--resume only writes its results again)"
            )
        raise UsageError(
            f"{out_dir} already holds an unfinished run; pass --resume to finish it, "
            "or choose a fresh --out"
        )
    for key, value in identity.items():
        if replay.header.get(key) != value:
            raise UsageError(
                f"cannot resume {out_dir}: {IDENTITY[key]} changed since the run started "
                f"({replay.header.get(key)} -> {value}); start a fresh --out"
            )


def open_session(
    path: Path, replay: Replay, identity: Mapping[str, Any], *, held: bool = False
) -> Journal:
    """Open the journal for appending: the header on a fresh run, then a new session.

    `held`: nothing reaches the file before `Journal.release()` (see Journal).
    """
    journal = Journal(path, held=held)
    if replay.header is None:
        journal.append({"event": "header", **identity, "created_at": utc_now()})
    journal.append(
        {
            "event": "session",
            "at": utc_now(),
            "wall_offset": replay.wall_seconds,
            "monotonic_wall": replay.wall_seconds,
        }
    )
    return journal
