"""W&B and ClearML inside a trial: the context they group and tag by, and the runs they made.

A training script that already calls `wandb.init()` or `Task.init()` keeps doing so;
mlaudit only sets the variables those clients read, so the W&B run is grouped by
study and tagged with arm, seed and trial, and afterwards it reads the ids of the
runs the clients left in the trial directory, so the report links both ways.
Nothing here imports wandb or clearml, and nothing reaches their servers.

W&B reads WANDB_RUN_GROUP, WANDB_JOB_TYPE, WANDB_TAGS, WANDB_NAME and WANDB_DIR
itself (wandb/env.py). ClearML has no variables for a task's project, name or
tags, so the same context goes into MLAUDIT_* variables a script passes to
`Task.init` (docs/where-runs-live.md); in offline mode its session folder is
kept in the trial directory (CLEARML_CACHE_DIR), where the task id is read from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

WANDB_DIR_NAME = "wandb"
CLEARML_DIR_NAME = "clearml"
# W&B refuses tags longer than 64 characters; a longer value is left out, not cut.
_WANDB_TAG_LIMIT = 64
_WANDB_RUN_FILE = re.compile(r"^run-([A-Za-z0-9_-]{1,128})\.wandb$")
_CLEARML_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_OFF = {"", "0", "false", "no", "off"}


def context_tags(*, edd_id: str | None, arm: str, seed: int, trial_id: str) -> list[str]:
    """Tags for a trial's foreign run: `key:value`, no commas (WANDB_TAGS splits on them)."""
    pairs = [("mlaudit", None), ("edd", edd_id), ("arm", arm), ("seed", str(seed))]
    pairs.append(("trial", trial_id))
    tags = []
    for key, value in pairs:
        if key != "mlaudit" and value is None:
            continue
        tag = key if value is None else f"{key}:{value}".replace(",", "_")
        if len(tag) <= _WANDB_TAG_LIMIT:
            tags.append(tag)
    return tags


def context_env(
    base_env: Mapping[str, str],
    *,
    edd_id: str | None,
    arm: str,
    seed: int,
    trial_id: str,
    trial_dir: Path,
) -> dict[str, str]:
    """Variables W&B reads, and the MLAUDIT_* convention for ClearML's Task.init."""
    tags = ",".join(context_tags(edd_id=edd_id, arm=arm, seed=seed, trial_id=trial_id))
    group = edd_id or "mlaudit"
    env = {
        "MLAUDIT_RUN_GROUP": group,
        "MLAUDIT_TAGS": tags,
        "WANDB_RUN_GROUP": group,
        "WANDB_JOB_TYPE": arm,
        "WANDB_TAGS": tags,
        "WANDB_NAME": trial_id,
        # One run directory per trial: parallel trials never share wandb/latest-run.
        "WANDB_DIR": str(trial_dir),
    }
    if edd_id is not None:
        env["MLAUDIT_EDD_ID"] = edd_id
    offline = base_env.get("CLEARML_OFFLINE_MODE", "").strip().lower() not in _OFF
    if offline and not base_env.get("CLEARML_CACHE_DIR"):
        env["CLEARML_CACHE_DIR"] = str(trial_dir / CLEARML_DIR_NAME)
    return env


def wandb_run_ids(trial_dir: Path) -> list[str]:
    """Ids of the W&B runs made in the trial: each run directory holds `run-<id>.wandb`."""
    root = trial_dir / WANDB_DIR_NAME
    ids: set[str] = set()
    if not root.is_dir():
        return []
    for run_dir in root.iterdir():
        if run_dir.is_symlink() or not run_dir.is_dir() or "run-" not in run_dir.name:
            continue  # latest-run is a link to one of the others
        for item in run_dir.iterdir():
            match = _WANDB_RUN_FILE.match(item.name)
            if match and item.is_file() and run_dir.name.endswith(f"-{match.group(1)}"):
                ids.add(match.group(1))
    return sorted(ids)


def clearml_task_ids(trial_dir: Path) -> list[str]:
    """Ids of the ClearML tasks of offline sessions kept in the trial: `offline/<id>/task.json`."""
    root = trial_dir / CLEARML_DIR_NAME / "offline"
    ids: set[str] = set()
    if not root.is_dir():
        return []
    for session in root.iterdir():
        task_file = session / "task.json"
        if session.is_symlink() or not task_file.is_file():
            continue
        try:
            task = json.loads(task_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        task_id = task.get("id") if isinstance(task, dict) else None
        # The folder is named after the task; anything else is not a session ClearML wrote.
        if isinstance(task_id, str) and task_id == session.name and _CLEARML_TASK_ID.match(task_id):
            ids.add(task_id)
    return sorted(ids)


def foreign_runs(trial_dir: Path) -> dict[str, list[str]]:
    """{"wandb": [...], "clearml": [...]}: the tools that left a run, and its ids."""
    found = {"wandb": wandb_run_ids(trial_dir), "clearml": clearml_task_ids(trial_dir)}
    return {tool: ids for tool, ids in found.items() if ids}
