"""The signed budget of a run: how many trials it may start and how long it may take.

It counts trials started (in this session and, on --resume, the ones the journal
says ran before) and the wall time spent, and says when the budget has run out and
why. It never starts or stops a trial; the runner asks it before each start.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from audit.errors import BudgetError


def check_plan_fits(planned_trial_count: int, budget: Mapping[str, Any]) -> None:
    """Refuse before any trial a plan that needs more trials than the budget allows."""
    if planned_trial_count > int(budget["max_trials"]):
        raise BudgetError(
            f"the plan needs {planned_trial_count} trials but the budget allows "
            f"{budget['max_trials']}"
        )


class TrialBudget:
    """Trials started and wall time spent against the EDD's `budget` block.

    `may_start` is asked on the runner's thread; `time_left` also on a worker's,
    by a trial that queued behind a busy worker and must not start late.
    """

    def __init__(self, budget: Mapping[str, Any], trials_run: int, wall_before: float) -> None:
        self.document = budget
        self.max_trials = int(budget["max_trials"])
        self.max_wall_seconds = float(budget["max_wall_minutes"]) * 60.0
        self.trials_run = trials_run
        self.wall_before = wall_before
        self._started = time.monotonic()
        self.exhausted_reason: str | None = None

    def wall_seconds(self) -> float:
        return self.wall_before + (time.monotonic() - self._started)

    def may_start(self) -> bool:
        """Whether one more trial fits (count and wall time); the caller then `take`s it."""
        if self.exhausted_reason is None and self.trials_run >= self.max_trials:
            self.exhausted_reason = f"budget exhausted: max_trials ({self.max_trials}) reached"
        return self.exhausted_reason is None and self.time_left()

    def take(self) -> None:
        """Count a trial the runner is about to start (or queue)."""
        self.trials_run += 1

    def give_back(self) -> None:
        """Uncount a taken trial that never started (cancelled, or out of wall time in queue)."""
        self.trials_run -= 1

    def seconds_left(self) -> float:
        """Wall seconds the budget still allows (an executor sends it on as a deadline)."""
        return max(0.0, self.max_wall_seconds - self.wall_seconds())

    def time_left(self) -> bool:
        """Whether the wall budget still allows a start (asked again by a trial that queued)."""
        if self.wall_seconds() < self.max_wall_seconds:
            return True
        if self.exhausted_reason is None:
            minutes = self.max_wall_seconds / 60
            self.exhausted_reason = f"budget exhausted: max_wall_minutes ({minutes:g}) reached"
        return False

    def summary(self, planned_trial_count: int) -> dict[str, Any]:
        """results.json's `budget`: the limits as signed and what the run spent of them."""
        return {
            "max_trials": self.max_trials,
            "max_wall_minutes": float(self.document["max_wall_minutes"]),
            "trial_timeout_seconds": float(self.document["trial_timeout_seconds"]),
            "trials_run": self.trials_run,
            "wall_seconds": round(self.wall_seconds(), 3),
            "exhausted": self.exhausted_reason is not None,
            "reason": self.exhausted_reason,
            "planned_trial_count": planned_trial_count,
        }
