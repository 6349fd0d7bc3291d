"""The scheduler's pause between rounds: long enough to take several short trials in
one round, never so long that a worker runs out of queued trials or a commit is late."""

from __future__ import annotations

import pytest

from audit.protocol.executor import LocalExecutor
from audit.protocol.runner import ROUND_PAUSE_SECONDS, round_pause


def test_no_pause_before_a_trial_duration_is_known() -> None:
    assert round_pause(None, queued=6, workers=2, commit_in=None) == 0.0


def test_no_pause_when_no_trial_is_queued_behind_the_workers() -> None:
    assert round_pause(0.5, queued=0, workers=2, commit_in=None) == 0.0
    assert round_pause(0.5, queued=-1, workers=2, commit_in=None) == 0.0  # a worker idle


def test_long_trials_pause_the_full_round() -> None:
    assert round_pause(30.0, queued=6, workers=2, commit_in=None) == ROUND_PAUSE_SECONDS


def test_short_trials_pause_half_the_time_their_queue_lasts() -> None:
    # 6 queued trials of 4 ms keep 2 workers busy 12 ms: the pause is 6 ms.
    assert round_pause(0.004, queued=6, workers=2, commit_in=None) == pytest.approx(0.006)
    # One queued trial of 4 ms for 4 workers: 0.5 ms.
    assert round_pause(0.004, queued=1, workers=4, commit_in=None) == pytest.approx(0.0005)


def test_a_due_group_commit_is_not_put_off() -> None:
    assert round_pause(30.0, queued=6, workers=2, commit_in=0.005) == pytest.approx(0.005)
    assert round_pause(30.0, queued=6, workers=2, commit_in=-0.01) == 0.0  # overdue


def test_the_local_pool_queues_enough_trials_to_cover_a_pause() -> None:
    executor = LocalExecutor(2)
    try:
        queued = executor.slots - executor.workers
        # Trials of 15 ms (a Python script's start-up) already get the full pause.
        assert round_pause(0.015, queued=queued, workers=2, commit_in=None) == ROUND_PAUSE_SECONDS
    finally:
        executor.close()
