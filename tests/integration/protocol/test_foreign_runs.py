"""ClearML inside a trial, with its real client in offline mode.

The trial script calls ClearML's `Task.init()` with the documented MLAUDIT_*
convention; the offline session must land in the trial directory, carry the study
context, and its task id be found afterwards. (W&B runs inside a real study in
test_data_pins_run.py.) Offline mode, HOME and config dirs in tmp: nothing leaves
the machine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from audit.protocol.foreign_runs import clearml_task_ids, foreign_runs
from audit.protocol.trial import TrialSpec, run_trial, trial_env

SCRIPT = r"""
import json, os, pathlib
from clearml import Task

trial_dir = pathlib.Path(os.environ["MLAUDIT_TRIAL_DIR"])
seen = {}
# ClearML has no variables for project, name or tags: the documented convention.
task = Task.init(
    project_name=os.environ["MLAUDIT_RUN_GROUP"],
    task_name=os.environ["MLAUDIT_TRIAL_ID"],
    tags=os.environ["MLAUDIT_TAGS"].split(","),
    auto_connect_frameworks=False,
    auto_resource_monitoring=False,
    auto_connect_streams=False,
)
task.get_logger().report_scalar("score", "score", 0.5, 0)
seen["clearml_id"] = task.id
task.close()
(trial_dir / "seen.json").write_text(json.dumps(seen))
(trial_dir / "metrics.json").write_text(json.dumps({"score": 0.5}))
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    base = tmp_path_factory.mktemp("foreign")
    home = base / "home"
    home.mkdir()
    # ClearML reports through a subprocess by default and waits ~10 s for it at close.
    conf = base / "clearml.conf"
    conf.write_text("sdk { development { report_use_subprocess: false } }\n")
    (base / "train.py").write_text(SCRIPT)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "CLEARML_OFFLINE_MODE": "1",
        "CLEARML_CONFIG_FILE": str(conf),
        "CLEARML_LOG_ENVIRONMENT": "",
        "NO_PROXY": "*",
    }
    trial_dir = base / "trials" / "no-a" / "3"
    spec = TrialSpec(
        trial_id="no-a/3",
        arm="no-a",
        seed=3,
        argv=(sys.executable, "train.py"),
        cwd=base,
        trial_dir=trial_dir,
        env=trial_env(
            env, seed=3, arm="no-a", trial_dir=trial_dir, trial_id="no-a/3", edd_id="toy-study"
        ),
        timeout_seconds=120,
        metrics_file="metrics.json",
        required_metrics=("score",),
    )
    outcome = run_trial(spec, lambda pid, attempt: None)
    return trial_dir, outcome


def test_clearml_offline_task_is_found_in_the_trial_directory(ran):
    trial_dir, outcome = ran
    assert outcome.status == "succeeded", outcome.reason
    seen = json.loads((trial_dir / "seen.json").read_text())
    assert clearml_task_ids(trial_dir) == [seen["clearml_id"]]
    task = json.loads(
        (trial_dir / "clearml" / "offline" / seen["clearml_id"] / "task.json").read_text()
    )
    assert task["project_name"] == "toy-study"
    assert task["name"] == "no-a/3"
    assert set(task["tags"]) >= {"arm:no-a", "seed:3", "trial:no-a/3"}
    assert foreign_runs(trial_dir) == {"clearml": [seen["clearml_id"]]}
