"""Provenance against real git and DVC repositories: code, data, environment."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from protocol_study import dvc, git

from audit.errors import ProvenanceError
from audit.protocol.containment import _descendants
from audit.protocol.progress import LineProgress
from audit.provenance.dvc import (
    data_hashes,
    dvc_status,
    prepare_dvc_status,
    start_dvc_status,
)
from audit.provenance.environment import describe_environment
from audit.provenance.record import collect_provenance


def test_clean_study_records_commit_tree_and_data(study):
    provenance = collect_provenance(study.root, ["data/train.csv"]).to_dict()
    assert provenance["git"]["commit"] == git(study.root, "rev-parse", "HEAD").strip()
    assert provenance["git"]["tree"] == git(study.root, "rev-parse", "HEAD^{tree}").strip()
    expected = hashlib.md5((study.root / "data" / "train.csv").read_bytes()).hexdigest()
    assert provenance["data"] == {"data/train.csv": expected}
    assert provenance["dvc_status_clean"] is True
    assert any(d.startswith("click==") for d in provenance["environment"]["distributions"])


def test_out_dir_inside_the_repo_does_not_make_it_dirty(study):
    results = study.root / "results-here"
    results.mkdir()
    (results / "journal.jsonl").write_text("{}\n")
    with pytest.raises(ProvenanceError, match="dirty"):
        collect_provenance(study.root, ["data/train.csv"])
    provenance = collect_provenance(study.root, ["data/train.csv"], exclude=[results])
    assert provenance.git.dirty is False


def test_untracked_data_path_is_refused(study):
    with pytest.raises(ProvenanceError, match=r"'data/other\.csv' is not tracked by DVC"):
        collect_provenance(study.root, ["data/other.csv"])


def test_dvc_lock_stage_outputs_and_their_status(study):
    (study.root / "prep.py").write_text(
        "import pathlib; pathlib.Path('data/prep.txt').write_text(open('data/train.csv').read())"
    )
    (study.root / "dvc.yaml").write_text(
        "stages:\n  prep:\n    cmd: python prep.py\n    deps: [data/train.csv, prep.py]\n"
        "    outs: [data/prep.txt]\n"
    )
    dvc(study.root, "repro", "-q")
    study.commit("prep stage")
    hashes = data_hashes(study.root, ["data/prep.txt", "data/train.csv"])
    assert set(hashes) == {"data/prep.txt", "data/train.csv"}
    assert collect_provenance(study.root, ["data/prep.txt"]).dvc_status_clean is True
    # Changing the stage's code without `dvc repro` leaves dvc.lock stale.
    (study.root / "prep.py").write_text("print('changed')\n")
    study.commit("change prep without repro")
    with pytest.raises(
        ProvenanceError, match=r"data does not match what DVC recorded: prep: .*prep.py"
    ) as refused:
        collect_provenance(study.root, ["data/prep.txt"])
    assert refused.value.hint is not None
    assert refused.value.hint.endswith("and commit dvc.lock")  # a stage's record
    # Started early in a child process (ablate run), the check answers exactly the same.
    pending = start_dvc_status(study.root, ["data/prep.txt"])
    assert pending.result() == dvc_status(study.root, ["data/prep.txt"]) != []
    with pytest.raises(
        ProvenanceError, match=r"data does not match what DVC recorded: prep: .*prep.py"
    ):
        collect_provenance(
            study.root,
            ["data/prep.txt"],
            dvc_check=start_dvc_status(study.root, ["data/prep.txt"]).result,
        )


def test_absent_data_says_to_pull_and_changed_data_to_commit(study):
    """A fresh clone has no data: the fix is `dvc pull`, not `dvc commit`."""
    data = study.root / "data" / "train.csv"
    original = data.read_bytes()
    data.unlink()
    with pytest.raises(ProvenanceError, match=r"train\.csv deleted") as absent:
        collect_provenance(study.root, ["data/train.csv"])
    assert "`dvc pull`" in str(absent.value.hint)
    data.write_bytes(original + b"1,2\n")
    with pytest.raises(ProvenanceError, match=r"train\.csv modified") as changed:
        collect_provenance(study.root, ["data/train.csv"])
    assert "`dvc commit`" in str(changed.value.hint)


def test_the_early_dvc_check_answers_as_dvc_status(study):
    assert start_dvc_status(study.root, ["data/train.csv"]).result() == []
    with pytest.raises(ProvenanceError, match=r"'data/other\.csv' is not tracked by DVC"):
        start_dvc_status(study.root, ["data/other.csv"]).result()
    pending = start_dvc_status(study.root, ["data/train.csv"])
    pending.close()  # a run that stops first leaves no child behind
    assert pending.result() == []  # and asking anyway checks in this process


def _children() -> set[int]:
    """This process's live `dvc status` children (a reaped or zombie child is not one).

    Only those: the session's other work (the CI images built beside the tests) starts and
    ends processes of its own under this one while a test runs.
    """
    live = set()
    for pid in _descendants(os.getpid()) or []:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:  # reaped since the listing
            continue
        if state != "Z" and b"from audit.provenance.dvc import" in command:
            live.add(pid)
    return live


def test_a_dvc_check_warmed_before_the_question_answers_as_dvc_status(study):
    """`ablate run` starts DVC's import before it has read the EDD; the answer is the same."""
    before = _children()
    warm = prepare_dvc_status(study.root / "data")  # below the project: .dvc is found above
    assert len(_children() - before) == 1
    assert warm.ask(study.root, ["data/train.csv"]).result() == []
    data = study.root / "data" / "train.csv"
    data.write_bytes(data.read_bytes() + b"1,2\n")
    warm = prepare_dvc_status(study.root)
    answer = warm.ask(study.root, ["data/train.csv"]).result()
    assert answer == dvc_status(study.root, ["data/train.csv"])
    assert answer
    assert "modified" in answer[0]
    assert _children() == before


def test_a_warm_dvc_check_that_is_never_asked_leaves_no_process(study, tmp_path):
    before = _children()
    prepare_dvc_status(study.root).close()  # the run stopped before it read the EDD
    prepare_dvc_status(study.root).ask(study.root, [])  # no DVC data
    assert _children() == before
    outside = tmp_path / "plain"
    outside.mkdir()
    prepare_dvc_status(outside)  # no .dvc folder here or above: nothing to warm
    assert _children() == before


def test_lock_file_and_image_digest(tmp_path):
    (tmp_path / "requirements.txt").write_text("click==8.1\n")
    (tmp_path / "requirements-dev.txt").write_text("pytest==8\n")
    environment = describe_environment(tmp_path, image_digest="sha256:" + "a" * 64)
    assert environment.lock_file == "requirements-dev.txt,requirements.txt"
    before = environment.lock_sha256
    (tmp_path / "uv.lock").write_text("version = 1\n")
    environment = describe_environment(tmp_path)
    assert environment.lock_file == "uv.lock"
    assert environment.lock_sha256 != before
    assert environment.image_digest is None
    assert describe_environment(tmp_path, image_digest="sha256:x").key["image"] == "sha256:x"


def test_image_digest_from_the_environment_is_recorded(study, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MLAUDIT_IMAGE_DIGEST", "sha256:" + "b" * 64)
    out = tmp_path / "out"
    assert run_cli(*study.run_args(out, "--no-cache", "--json")).exit_code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["environment"]["image_digest"] == "sha256:" + "b" * 64


def test_line_progress_prints_counts_and_reasons():
    stream = io.StringIO()
    progress = LineProgress(stream)
    progress.start(3, 1)
    progress.advance({"trial_id": "no-a/0", "status": "failed", "reason": "exit code 3"})
    progress.advance({"trial_id": "no-a/1", "status": "succeeded", "cached_from": "no-b/1"})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "mlaudit: 3 trials, 1 already finished"
    assert lines[1].startswith("mlaudit: [2/3] no-a/0 failed: exit code 3")
    assert "[3/3] no-a/1 cached from no-b/1" in lines[2]


def test_rich_progress_renders_a_bar_and_failures():
    from audit.protocol.progress import RichProgress

    stream = io.StringIO()
    progress = RichProgress(stream)
    progress.start(2, 0)
    progress.advance({"trial_id": "no-a/0", "status": "timeout", "reason": "timed out"})
    progress.advance({"trial_id": "no-a/1", "status": "succeeded", "duration_seconds": 1.0})
    progress.finish()
    output = stream.getvalue()
    assert "no-a/0 timeout: timed out" in output
    assert "2/2" in output
