"""The spool on disk: header once, trials and close appended, torn lines survived."""

from __future__ import annotations

import pytest

from audit.errors import TrackingError
from audit.tracking.runspec import execution_key
from audit.tracking.spool import Spool, read_spool_file

HEADER = {"edd": {"id": "toy", "digest": "d" * 64}, "plan": {"arms": []}, "provenance": {}}


def test_appends_are_one_execution_file_with_content_addressed_files(tmp_path):
    spool = Spool(tmp_path / "spool")
    artifact = tmp_path / "model.txt"
    artifact.write_text("weights")
    trial = {"trial_id": "baseline/0", "arm": "baseline", "seed": 0, "status": "succeeded"}
    spool.append_trial("http://x", "toy", HEADER, trial, [("model.txt", artifact)])
    spool.append_trial("http://x", "toy", HEADER, {**trial, "seed": 1}, [])
    spool.append_close("http://x", "toy", HEADER, {"trials": []}, None, {"extra/a": artifact})
    (path,) = spool.pending()
    assert path.name == f"{execution_key(HEADER)}.jsonl"
    execution = read_spool_file(path)
    assert execution.experiment == "toy"
    assert execution.header == HEADER
    assert [t["seed"] for t, _ in execution.trials] == [0, 1]
    name, digest = execution.trials[0][1][0]
    assert name == "model.txt"
    assert spool.blob(digest).read_text() == "weights"
    assert execution.close is not None
    assert execution.close["files"] == [["extra/a", digest]]  # stored once


def test_a_torn_last_line_is_ignored(tmp_path):
    spool = Spool(tmp_path)
    spool.append_trial("u", "toy", HEADER, {"trial_id": "a/0"}, [])
    (path,) = spool.pending()
    with path.open("a") as handle:
        handle.write('{"kind": "trial", "trial": {"tri')
    assert len(read_spool_file(path).trials) == 1


def test_a_file_without_header_is_refused(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"kind": "trial", "trial": {}}\n')
    with pytest.raises(TrackingError, match="does not start with a header"):
        read_spool_file(path)
