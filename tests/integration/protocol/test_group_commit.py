"""Group commit: trials that finish close together share one journal fsync.

Nobody (progress, cache, tracking) hears of a trial before the fsync that makes it
durable; a trial that finished waits at most GROUP_COMMIT_SECONDS for others, never
for a trial that is still running.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from protocol_study import Study, edd_document

from audit.edd import load_edd, planned_trial_count
from audit.protocol import runner
from audit.protocol.journal import Journal
from audit.protocol.plan import build_plan
from audit.protocol.runner import RunOutcome, RunRequest, run_protocol
from audit.provenance.record import collect_provenance


class Advances:
    """A progress sink that remembers which trials it was told about."""

    def __init__(self) -> None:
        self.trials: list[str] = []

    def start(self, total: int, done: int) -> None: ...

    def advance(self, trial: Any) -> None:
        self.trials.append(str(trial["trial_id"]))

    def note(self, text: str) -> None: ...

    def finish(self) -> None: ...


def _request(study: Study, out: Path, progress: Advances) -> RunRequest:
    edd = load_edd(study.edd)
    return RunRequest(
        edd={
            "id": edd.id,
            "version": edd.version,
            "digest": edd.digest,
            "path": "edd.yaml",
            "document": edd.document,
        },
        plan=build_plan(edd.document, source=str(study.edd)),
        planned_trial_count=planned_trial_count(edd.document),
        provenance=collect_provenance(study.root, ["data/train.csv"]).to_dict(),
        project_root=study.root,
        out_dir=out,
        base_env=dict(os.environ),
        workers=2,
        cache_dir=out.parent / "cache",
        progress=progress,
    )


def _count_syncs(monkeypatch: pytest.MonkeyPatch, progress: Advances) -> list[int]:
    """How many trials progress had heard of at each journal fsync."""
    heard: list[int] = []
    sync = Journal.sync

    def counted(self: Journal) -> None:
        heard.append(len(progress.trials))
        sync(self)

    monkeypatch.setattr(Journal, "sync", counted)
    return heard


def test_trials_finishing_while_others_run_share_one_fsync(
    new_study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window no run reaches: only the end of the plan (nothing left running) commits.
    monkeypatch.setattr(runner, "GROUP_COMMIT_SECONDS", 600.0)
    study = new_study(edd_document(seeds=[0, 1]))
    progress = Advances()
    heard = _count_syncs(monkeypatch, progress)
    outcome = run_protocol(_request(study, tmp_path / "out", progress))
    assert [t["status"] for t in outcome.results["trials"]] == ["succeeded"] * 8
    assert heard == [0]  # one fsync for all eight, and nobody heard of any before it
    assert len(progress.trials) == 8
    events = (tmp_path / "out" / "journal.jsonl").read_text().count('"event":"finished"')
    assert events == 8


def test_a_finished_trial_does_not_wait_for_one_still_running(
    new_study, markers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window longer than the seed-0 trials take: nothing but its end publishes them.
    monkeypatch.setattr(runner, "GROUP_COMMIT_SECONDS", 0.5)
    monkeypatch.setenv("STUDY_BLOCK_SEED", "1")  # seed-1 trials hold until released
    study = new_study(edd_document(seeds=[0, 1]))
    progress = Advances()
    ended: dict[str, Any] = {}

    def run() -> None:
        try:
            ended["outcome"] = run_protocol(_request(study, tmp_path / "out", progress))
        except BaseException as error:
            ended["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # Every seed-0 trial is published while the seed-1 ones still run.
        deadline = time.monotonic() + 30
        while sum(t.endswith("/0") for t in progress.trials) < 4:
            assert time.monotonic() < deadline, f"published only {progress.trials}"
            time.sleep(0.02)
        assert list(markers.glob("*.blocked"))
        assert not any(t.endswith("/1") for t in progress.trials)
    finally:
        (markers / "release").touch()
        thread.join(60)
    outcome: RunOutcome = ended["outcome"]
    assert [t["status"] for t in outcome.results["trials"]] == ["succeeded"] * 8
