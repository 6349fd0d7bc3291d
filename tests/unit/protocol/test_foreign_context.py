"""Study context for W&B / ClearML and the run ids read back from a trial directory."""

from __future__ import annotations

import json
from pathlib import Path

from audit.protocol.foreign_runs import (
    clearml_task_ids,
    context_env,
    context_tags,
    foreign_runs,
    wandb_run_ids,
)


def test_tags_carry_the_study_context_without_commas():
    tags = context_tags(edd_id="fraud,v2", arm="no-a", seed=7, trial_id="no-a/7")
    assert tags == ["mlaudit", "edd:fraud_v2", "arm:no-a", "seed:7", "trial:no-a/7"]


def test_a_tag_wandb_would_refuse_is_left_out():
    tags = context_tags(edd_id="e", arm="x" * 70, seed=1, trial_id="t")
    assert not any(t.startswith("arm:") for t in tags)


def test_context_env_names_the_variables_wandb_reads(tmp_path: Path):
    env = context_env({}, edd_id="toy", arm="no-a", seed=1, trial_id="no-a/1", trial_dir=tmp_path)
    assert env["WANDB_RUN_GROUP"] == env["MLAUDIT_RUN_GROUP"] == "toy"
    assert env["WANDB_JOB_TYPE"] == "no-a"
    assert env["WANDB_NAME"] == "no-a/1"
    assert env["WANDB_DIR"] == str(tmp_path)
    assert env["WANDB_TAGS"] == env["MLAUDIT_TAGS"]
    assert "CLEARML_CACHE_DIR" not in env  # online ClearML keeps its own cache


def test_offline_clearml_keeps_its_session_in_the_trial_unless_told_otherwise(tmp_path: Path):
    offline = {"CLEARML_OFFLINE_MODE": "1"}
    env = context_env(offline, edd_id=None, arm="a", seed=1, trial_id="a/1", trial_dir=tmp_path)
    assert env["CLEARML_CACHE_DIR"] == str(tmp_path / "clearml")
    assert env["WANDB_RUN_GROUP"] == "mlaudit"
    chosen = {**offline, "CLEARML_CACHE_DIR": "/elsewhere"}
    env = context_env(chosen, edd_id=None, arm="a", seed=1, trial_id="a/1", trial_dir=tmp_path)
    assert "CLEARML_CACHE_DIR" not in env


def _wandb_run(trial_dir: Path, folder: str, run_file: str) -> Path:
    run_dir = trial_dir / "wandb" / folder
    run_dir.mkdir(parents=True)
    (run_dir / run_file).write_bytes(b"")
    return run_dir


def test_wandb_ids_come_from_run_directories_only(tmp_path: Path):
    run = _wandb_run(tmp_path, "offline-run-20261202_101010-abc123", "run-abc123.wandb")
    _wandb_run(tmp_path, "run-20261202_101011-def456", "run-def456.wandb")
    _wandb_run(tmp_path, "run-20261202_101012-zzz", "run-other.wandb")  # name and file disagree
    (tmp_path / "wandb" / "latest-run").symlink_to(run)
    assert wandb_run_ids(tmp_path) == ["abc123", "def456"]


def test_clearml_ids_come_from_task_json_matching_its_folder(tmp_path: Path):
    root = tmp_path / "clearml" / "offline"
    for folder, task_id in [("offline-1", "offline-1"), ("offline-2", "offline-9")]:
        (root / folder).mkdir(parents=True)
        (root / folder / "task.json").write_text(json.dumps({"id": task_id}))
    (root / "offline-3").mkdir()
    (root / "offline-3" / "task.json").write_text("{not json")
    assert clearml_task_ids(tmp_path) == ["offline-1"]


def test_no_foreign_runs_is_an_empty_record(tmp_path: Path):
    assert foreign_runs(tmp_path) == {}
