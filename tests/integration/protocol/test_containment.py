"""Hostile trials: bad metrics fail that one trial, and nothing a trial starts survives it.

Regressions from the hardening review (issue 16). On main, a metrics.json with
10^400, 100k nested arrays or a 5,000-deep object killed the whole `ablate run`
(no results.json); a symlinked or duplicate-key metrics.json was accepted; and a
grandchild in a new session (or a double-forked daemon) outlived the trial, the
determinism re-run and a SIGKILLed runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from protocol_study import VENV_BIN, edd_document

# The trial program: `behaviour=<name>` (an override) picks what it does. Spawned
# processes record their pid under $STUDY_MARKERS so the test can look for them.
HOSTILE_PY = r"""
import json, os, pathlib, subprocess, sys, time, yaml

trial_dir = pathlib.Path(os.environ["MLAUDIT_TRIAL_DIR"])
seed = int(os.environ["MLAUDIT_SEED"])
markers = pathlib.Path(os.environ["STUDY_MARKERS"])
behaviour = yaml.safe_load(open("params.base.yaml")).get("behaviour", "ok")
for item in sys.argv[1:]:
    key, _, value = item.partition("=")
    if key == "behaviour":
        behaviour = value
tag = f"{os.environ['MLAUDIT_ARM']}~{seed}~{os.getpid()}"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def record(pid, kind):
    path = markers / f"{tag}~{kind}~{pid}.pid"
    path.write_text(str(pid))


def setsid_child():
    child = subprocess.Popen(SLEEPER, start_new_session=True)
    record(child.pid, "setsid")


def double_fork():
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            os.execv(sys.executable, SLEEPER)
        os._exit(0)
    os.close(write)
    os.waitpid(middle, 0)
    record(int(os.read(read, 32)), "double-fork")  # an orphan now, in its own session


text = json.dumps({"score": 0.5 + seed * 1e-3})
if behaviour == "setsid_child":
    setsid_child()
elif behaviour == "double_fork":
    double_fork()
elif behaviour == "setsid_hang":
    setsid_child()
    time.sleep(600)
elif behaviour == "huge_number":
    text = '{"score": 1' + "0" * 400 + "}"
elif behaviour == "nested_arrays":
    text = '{"score": ' + "[" * 100_000 + "]" * 100_000 + "}"
elif behaviour == "deep_object":
    text = '{"a": ' * 5_000 + "1" + "}" * 5_000
elif behaviour == "duplicate_keys":
    text = '{"score": 0.1, "score": 0.9}'
if behaviour == "symlink":
    outside = trial_dir.parents[2] / "outside-metrics.json"
    outside.write_text(text)
    (trial_dir / "metrics.json").symlink_to(outside)
else:
    (trial_dir / "metrics.json").write_text(text)
"""


def _study(new_study, behaviours: list[str], baseline: str = "ok", **budget: float):
    document = edd_document(
        command=[sys.executable, "hostile.py", "{overrides}"],
        components=[{"name": name, "ablate": [f"behaviour={name}"]} for name in behaviours],
        references=[],
        seeds=[0],
    )
    document["protocol"]["baseline"]["behaviour"] = baseline
    document["metrics"]["secondary"] = []
    document["decision"]["claims"] = [{"target": behaviours[0], "claim": "improves"}]
    document["budget"].update(budget)
    study = new_study(document)
    (study.root / "hostile.py").write_text(HOSTILE_PY, encoding="utf-8")
    study.commit("hostile trial program")
    return study


def _trials(out: Path) -> dict[str, dict]:
    return {t["trial_id"]: t for t in json.loads((out / "results.json").read_text())["trials"]}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _survivors(markers: Path, kind: str, timeout: float = 3.0) -> list[int]:
    pids = [int(p.read_text()) for p in markers.glob(f"*~{kind}~*.pid")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    alive = [pid for pid in pids if _alive(pid)]
    for pid in alive:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    return alive


@pytest.fixture(autouse=True)
def _kill_recorded_leftovers(markers: Path):
    """Whatever a failing test leaves running must not outlive it."""
    yield
    for path in markers.glob("*.pid"):
        pid = int(path.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("huge_number", "metrics.json: a number of 401 characters is out of range"),
        ("nested_arrays", "metrics.json: nesting deeper than 64 levels"),
        ("deep_object", "metrics.json: nesting deeper than 64 levels"),
        ("duplicate_keys", "metrics.json: duplicate key 'score'"),
        ("symlink", "metrics.json: a symbolic link is refused"),
    ],
)
def test_hostile_metrics_fail_that_trial_and_the_study_goes_on(
    new_study, run_cli, tmp_path, markers, behaviour, reason
):
    study = _study(new_study, [behaviour])
    out = tmp_path / "out"
    # The failed trial is attrition (exit 4 by default); here only "the study goes on" counts.
    result = run_cli(*study.run_args(out, "--no-cache", "--attrition-ok"))
    assert result.exit_code == 0, result.stderr
    trials = _trials(out)
    assert trials[f"no-{behaviour}/0"]["status"] == "failed"
    assert reason in trials[f"no-{behaviour}/0"]["reason"]
    assert trials["baseline/0"]["status"] == "succeeded"


@pytest.mark.parametrize("kind", ["setsid", "double-fork"])
def test_nothing_a_finished_trial_started_survives_it(new_study, run_cli, tmp_path, markers, kind):
    behaviour = {"setsid": "setsid_child", "double-fork": "double_fork"}[kind]
    study = _study(new_study, [behaviour])
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 0, result.stderr
    assert _trials(tmp_path / "out")[f"no-{behaviour}/0"]["status"] == "succeeded"
    assert len(list(markers.glob(f"*~{kind}~*.pid"))) == 1
    assert _survivors(markers, kind, timeout=0.5) == []


def test_nothing_survives_a_timed_out_trial(new_study, run_cli, tmp_path, markers):
    study = _study(new_study, ["setsid_hang"], trial_timeout_seconds=3)
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache", "--attrition-ok"))
    assert result.exit_code == 0, result.stderr
    assert _trials(tmp_path / "out")["no-setsid_hang/0"]["status"] == "timeout"
    assert len(list(markers.glob("*~setsid~*.pid"))) == 1
    assert _survivors(markers, "setsid", timeout=0.5) == []


def test_nothing_survives_the_determinism_rerun(new_study, run_cli, tmp_path, markers):
    # The baseline (whose seed 0 is re-run for the determinism check) spawns each time.
    study = _study(new_study, ["double_fork"], baseline="setsid_child")
    result = run_cli(*study.run_args(tmp_path / "out", "--no-cache"))
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["reproducibility"]["passed"]
    assert len(list(markers.glob("baseline~0~*~setsid~*.pid"))) == 2  # trial + re-run
    assert _survivors(markers, "setsid", timeout=0.5) == []


def test_nothing_survives_a_sigkilled_runner(new_study, tmp_path, markers):
    study = _study(new_study, ["double_fork"], baseline="setsid_hang")
    command = [f"{VENV_BIN}/mlaudit", *study.run_args(tmp_path / "out", "--no-cache")]
    runner = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(markers.glob("baseline~*~setsid~*.pid")):
        time.sleep(0.05)
    assert len(list(markers.glob("baseline~*~setsid~*.pid"))) == 1
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    assert _survivors(markers, "setsid", timeout=5) == []
