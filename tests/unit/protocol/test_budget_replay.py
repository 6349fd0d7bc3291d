"""The budget's accounting and the journal's replay, on their own (the runner only schedules)."""

from __future__ import annotations

import pytest

from audit.errors import BudgetError, UsageError
from audit.protocol.budget import TrialBudget, check_plan_fits
from audit.protocol.journal import Journal
from audit.protocol.journal_replay import check_resume, open_session, replay_journal

BUDGET = {"max_trials": 3, "max_wall_minutes": 10, "trial_timeout_seconds": 5}
IDENTITY = {"edd_digest": "e", "plan_sha256": "p", "provenance_fingerprint": "f", "shard": None}


def test_a_plan_larger_than_the_budget_is_refused_before_any_trial():
    check_plan_fits(3, BUDGET)
    with pytest.raises(BudgetError, match="the plan needs 4 trials but the budget allows 3"):
        check_plan_fits(4, BUDGET)


def test_the_trial_budget_counts_starts_and_says_why_it_ran_out():
    budget = TrialBudget(BUDGET, trials_run=1, wall_before=0.0)
    assert budget.may_start()
    budget.take()
    budget.take()
    assert not budget.may_start()
    budget.give_back()  # a queued trial that never started is not spent
    assert budget.trials_run == 2
    summary = budget.summary(planned_trial_count=3)
    assert summary["exhausted"] is True
    assert summary["reason"] == "budget exhausted: max_trials (3) reached"
    assert summary["trials_run"] == 2
    assert summary["max_wall_minutes"] == 10.0


def test_the_wall_budget_counts_earlier_sessions():
    budget = TrialBudget(BUDGET, trials_run=0, wall_before=600.0)
    assert not budget.may_start()
    assert budget.exhausted_reason == "budget exhausted: max_wall_minutes (10) reached"


def _finished(trial_id: str, attempts: int) -> dict[str, object]:
    return {"event": "finished", "trial": {"trial_id": trial_id, "attempts": attempts}}


def test_replay_says_what_finished_was_tracked_and_was_left_in_flight(tmp_path):
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"event": "header", **IDENTITY})
        journal.append({"event": "session", "wall_offset": 0.0, "monotonic_wall": 0.0})
        journal.append({"event": "started", "trial_id": "a", "pid": 1, "monotonic_wall": 1.0})
        journal.append({**_finished("a", 1), "monotonic_wall": 2.0})
        journal.append({"event": "tracked", "trial_id": "a", "mlflow_run_id": "r1"})
        journal.append({**_finished("b", 0), "monotonic_wall": 3.0})  # from the cache
        journal.append({"event": "started", "trial_id": "c", "pid": 2, "monotonic_wall": 4.0})
        # A second session (after a resume) adds its own wall time.
        journal.append({"event": "session", "wall_offset": 4.0, "monotonic_wall": 4.0})
        journal.append({"event": "reproducibility", "result": {"attempts": 1}})
        journal.append({"event": "end", "monotonic_wall": 6.5})
    replay = replay_journal(path)
    assert set(replay.finished) == {"a", "b"}
    assert replay.finished["a"]["mlflow_run_id"] == "r1"
    assert replay.untracked() == ["b"]
    assert [e["trial_id"] for e in replay.in_flight] == ["c"]
    assert replay.executed_trials() == 2  # a, and the determinism re-run; b was cached
    assert replay.wall_seconds == pytest.approx(4.0 + 2.5)
    assert replay.header is not None
    assert replay.header["plan_sha256"] == "p"


def test_an_attempt_submitted_but_never_heard_to_start_is_in_flight(tmp_path):
    """A driver killed between handing Ray a trial and hearing it start leaves its token."""
    path = tmp_path / "journal.jsonl"
    with Journal(path) as journal:
        journal.append({"event": "header", **IDENTITY})
        submitted = {"event": "submitted", "attempt": 1, "ray_job_id": "j"}
        journal.append({**submitted, "trial_id": "a", "submission": "t-a1"})
        journal.append({**submitted, "trial_id": "b", "submission": "t-b1"})
        journal.append({"event": "started", "trial_id": "b", "attempt": 1, "pid": 7})
        journal.append({"event": "attempt_lost", "trial_id": "b", "attempt": 1})
        journal.append({**submitted, "trial_id": "b", "attempt": 2, "submission": "t-b2"})
        journal.append({**submitted, "trial_id": "c", "submission": "t-c1"})
        journal.append({"event": "started", "trial_id": "c", "attempt": 1, "pid": 9})
        journal.append({**_finished("c", 1)})
    in_flight = {e["trial_id"]: e for e in replay_journal(path).in_flight}
    assert set(in_flight) == {"a", "b"}
    assert in_flight["a"]["submission"] == "t-a1"
    # b's second attempt was handed over but never started: its own token, no stale pid.
    assert in_flight["b"]["submission"] == "t-b2"
    assert in_flight["b"]["attempt"] == 2
    assert "pid" not in in_flight["b"]


def test_a_fresh_out_dir_replays_to_nothing_and_gets_a_header(tmp_path):
    path = tmp_path / "journal.jsonl"
    replay = replay_journal(path)
    check_resume(replay, IDENTITY, resume=False, out_dir=tmp_path)
    open_session(path, replay, IDENTITY).close()
    again = replay_journal(path)
    assert again.header is not None
    assert again.header["edd_digest"] == "e"
    assert again.finished == {}
    assert again.wall_seconds == 0.0


def test_a_resume_must_be_asked_for_and_be_the_same_run(tmp_path):
    path = tmp_path / "journal.jsonl"
    open_session(path, replay_journal(path), IDENTITY).close()
    replay = replay_journal(path)
    with pytest.raises(UsageError, match="already holds an unfinished run; pass --resume"):
        check_resume(replay, IDENTITY, resume=False, out_dir=tmp_path)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(UsageError, match=r"already holds a finished run \(results.json\)"):
        check_resume(replay, IDENTITY, resume=False, out_dir=tmp_path)
    check_resume(replay, IDENTITY, resume=True, out_dir=tmp_path)
    with pytest.raises(UsageError, match="the plan changed since the run started"):
        check_resume(replay, {**IDENTITY, "plan_sha256": "q"}, resume=True, out_dir=tmp_path)
