"""Where a trial runs: the seam between the runner and an engine (local pool, Ray).

The runner keeps everything that makes a run auditable - plan, journal, cache,
budget, results - and hands each trial to an executor, which runs it somewhere
and answers with a future. An executor reports every attempt it starts (and every
attempt the engine lost) through the trial's AttemptLog, which journals it; it
never writes the journal, results or cache itself, and never decides a status
from anything but the trial's own outcome.
"""

from __future__ import annotations

import concurrent.futures as futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from audit.protocol import containment
from audit.protocol.budget import TrialBudget
from audit.protocol.results import utc_now
from audit.protocol.trial import TrialOutcome, TrialSpec, run_trial

# Turns a trial's spec into the one it runs with, just before it starts.
Prepare = Callable[[TrialSpec], TrialSpec]


@dataclass(frozen=True)
class AttemptStart:
    """One attempt of a trial has started: its process group and, off the driver, where."""

    attempt: int
    pid: int | None
    pid_start: str | None
    where: Mapping[str, Any] = field(default_factory=dict)  # node, engine task id ...


class AttemptLog(Protocol):
    """How an executor tells the runner's journal about a trial's attempts."""

    def submitted(self, attempt: int, token: str, where: Mapping[str, Any]) -> None:
        """An engine was handed the attempt; its environment carries `token`
        (containment.SUBMISSION_VARIABLE) until it reports the attempt started."""

    def started(self, start: AttemptStart) -> None: ...

    def lost(self, attempt: int, reason: str, where: Mapping[str, Any]) -> None:
        """The engine lost the attempt (node or worker died): infrastructure, not the trial."""


class NoAttemptLog:
    """An AttemptLog that journals nothing (the determinism re-run keeps no attempts)."""

    def submitted(self, attempt: int, token: str, where: Mapping[str, Any]) -> None:
        pass

    def started(self, start: AttemptStart) -> None:
        pass

    def lost(self, attempt: int, reason: str, where: Mapping[str, Any]) -> None:
        pass


@dataclass(frozen=True)
class Started:
    """A trial's final outcome, when it started, and what the executor adds to its record."""

    outcome: TrialOutcome
    at: str
    record: Mapping[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    """Runs trials; `slots` is how many the runner keeps submitted at once."""

    slots: int

    def submit(
        self,
        spec: TrialSpec,
        budget: TrialBudget,
        log: AttemptLog,
        prepare: Prepare | None = None,
    ) -> futures.Future[Started | None]:
        """Run the trial; the future holds None when the wall budget ran out before it began.

        `prepare` runs once, just before the trial starts (never for a trial that does
        not start): metric source mlflow opens the run the trial logs into there.
        """

    def run_one(self, spec: TrialSpec) -> TrialOutcome:
        """Run one trial now and wait for it (the determinism re-run)."""

    def abort(self) -> None:
        """The run is being interrupted: stop whatever is running."""

    def close(self) -> None: ...


class LocalExecutor:
    """The local process pool: one thread per worker, each running trials as subprocesses."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        # Trials queued behind the busy workers: a worker that finishes starts its next
        # trial at once, instead of waiting for the runner to finish an fsync or to end
        # the pause between its rounds (runner.ROUND_PAUSE_SECONDS).
        self.slots = 4 * self.workers
        self._pool = futures.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="trial"
        )
        self._live: dict[str, int] = {}  # trial id -> process group of its attempt

    def submit(
        self,
        spec: TrialSpec,
        budget: TrialBudget,
        log: AttemptLog,
        prepare: Prepare | None = None,
    ) -> futures.Future[Started | None]:
        return self._pool.submit(self._start, spec, budget, log, prepare)

    def _start(
        self, spec: TrialSpec, budget: TrialBudget, log: AttemptLog, prepare: Prepare | None
    ) -> Started | None:
        """Run a queued trial on a worker, unless the wall budget ran out while it waited."""
        if not budget.time_left():
            return None
        at = utc_now()
        if prepare is not None:
            spec = prepare(spec)

        def started(pid: int, attempt: int) -> None:
            self._live[spec.trial_id] = pid
            log.started(AttemptStart(attempt, pid, containment.process_start_ticks(pid)))

        try:
            return Started(run_trial(spec, started), at)
        finally:
            self._live.pop(spec.trial_id, None)

    def run_one(self, spec: TrialSpec) -> TrialOutcome:
        return run_trial(spec, lambda pid, attempt: None)

    def abort(self) -> None:
        for pid in list(self._live.values()):
            containment.kill_group(pid)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
