"""Trials that start while `dvc status` is still out: nothing counts before it passed.

The runner gets the data check as a future the test decides. While it is out, trials
run but no journal, cache entry or progress line exists; a failure stops the run with
its trials killed and nothing written; a pass publishes every held result as usual.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import pytest
from protocol_study import Study, edd_document

from audit.edd import load_edd, planned_trial_count
from audit.errors import ProvenanceError
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


def _request(
    study: Study, out: Path, check: futures.Future[None], progress: Advances
) -> RunRequest:
    edd = load_edd(study.edd)
    provenance = collect_provenance(study.root, ["data/train.csv"], dvc_pending=True)
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
        provenance=provenance.to_dict(),
        project_root=study.root,
        out_dir=out,
        base_env=dict(os.environ),
        workers=2,
        cache_dir=out.parent / "cache",
        progress=progress,
        data_check=check,
    )


def _start(request: RunRequest) -> tuple[threading.Thread, dict[str, Any]]:
    ended: dict[str, Any] = {}

    def run() -> None:
        try:
            ended["outcome"] = run_protocol(request)
        except BaseException as error:
            ended["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, ended


def _wait_for(markers: Path, pattern: str, count: int) -> list[Path]:
    deadline = time.monotonic() + 60
    while len(found := list(markers.glob(pattern))) < count:
        assert time.monotonic() < deadline, f"no {pattern} marker appeared"
        time.sleep(0.02)
    return found


@pytest.fixture
def blocked_study(new_study, markers: Path, monkeypatch: pytest.MonkeyPatch) -> Study:
    """Seed-1 trials hold until released: seed-0 ones finish while the check is out."""
    monkeypatch.setenv("STUDY_BLOCK_SEED", "1")
    return new_study(edd_document(seeds=[0, 1]))


def _nothing_published(out: Path, progress: Advances) -> None:
    assert not (out / "journal.jsonl").exists()
    assert not (out / "results.json").exists()
    assert not list((out.parent / "cache").glob("**/*.json"))
    assert progress.trials == []


def test_a_failed_data_check_stops_the_run_with_nothing_counted(blocked_study, markers, tmp_path):
    out, check, progress = tmp_path / "out", futures.Future[None](), Advances()
    thread, ended = _start(_request(blocked_study, out, check, progress))
    _wait_for(markers, "*.done", 1)  # a trial finished ...
    blocked = _wait_for(markers, "*.blocked", 1)
    _nothing_published(out, progress)  # ... and nobody heard of it
    check.set_exception(ProvenanceError("data does not match what DVC recorded: data/train.csv"))
    thread.join(60)
    assert isinstance(ended.get("error"), ProvenanceError)
    _nothing_published(out, progress)
    for marker in blocked:  # the trials still running were stopped
        pid = int(marker.name.split("~")[2].removesuffix(".blocked"))
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_passed_data_check_publishes_what_it_held(blocked_study, markers, tmp_path):
    out, check, progress = tmp_path / "out", futures.Future[None](), Advances()
    thread, ended = _start(_request(blocked_study, out, check, progress))
    held = _wait_for(markers, "*.done", 1)
    _nothing_published(out, progress)
    check.set_result(None)
    (markers / "release").touch()
    thread.join(60)
    outcome: RunOutcome = ended["outcome"]
    assert [t["status"] for t in outcome.results["trials"]] == ["succeeded"] * 8
    assert outcome.results["provenance"]["dvc_status_clean"] is True
    assert len(progress.trials) == 8
    assert {f"{m.name.split('~')[0]}/0" for m in held} <= set(progress.trials)
    lines = (out / "journal.jsonl").read_text().splitlines()
    assert '"event":"header"' in lines[0]
    assert '"event":"session"' in lines[1]
    fingerprints = {t["fingerprint"] for t in outcome.results["trials"]}
    assert len(list((out.parent / "cache").glob("**/*.json"))) == len(fingerprints)


def test_the_rerun_starts_while_the_data_check_is_still_out(new_study, markers, tmp_path):
    # A data check slower than the plan (DVC's import on a loaded machine) must not
    # hold the determinism re-run back until every plan trial has finished.
    study = new_study(edd_document(seeds=[0, 1]))
    out, check, progress = tmp_path / "out", futures.Future[None](), Advances()
    thread, ended = _start(_request(study, out, check, progress))
    try:
        _wait_for(markers, "*~rerun.start", 1)
        _nothing_published(out, progress)
    finally:
        check.set_result(None)  # a failed wait still lets the run end
        thread.join(60)
    outcome: RunOutcome = ended["outcome"]
    assert [t["status"] for t in outcome.results["trials"]] == ["succeeded"] * 8
    assert outcome.results["reproducibility"]["passed"] is True
    lines = (out / "journal.jsonl").read_text().splitlines()
    assert sum('"event":"reproducibility"' in line for line in lines) == 1
