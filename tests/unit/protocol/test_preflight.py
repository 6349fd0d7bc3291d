"""Pre-flight resolves the trial command without running it; early stop on uniform failure."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from audit.errors import ProtocolError
from audit.protocol.early_stop import FirstTrialWatch
from audit.protocol.preflight import check_command


def _env(*path: Path | str) -> dict[str, str]:
    return {"PATH": os.pathsep.join(str(p) for p in path)}


def test_names_the_interpreter_found_on_path(tmp_path: Path):
    (tmp_path / "train.py").write_text("print(1)\n")
    bin_dir = Path(sys.executable).parent
    found = check_command(["python", "train.py"], tmp_path, _env(bin_dir), source="edd.yaml")
    assert found.resolved == bin_dir / "python"
    assert f"trials will run {bin_dir / 'python'} train.py (found as 'python' on PATH)" in (
        found.describe()
    )
    assert found.notes() == []


def test_a_program_missing_from_path_is_refused_before_any_trial(tmp_path: Path):
    with pytest.raises(ProtocolError, match="'python' was not found on PATH") as error:
        check_command(["python", "train.py"], tmp_path, _env(tmp_path / "empty"), source="e.yaml")
    assert error.value.location is not None
    assert str(error.value.location) == "e.yaml:/protocol/command"


def test_relative_program_and_missing_script_and_workdir(tmp_path: Path):
    with pytest.raises(ProtocolError, match="not found relative to"):
        check_command(["./run.sh"], tmp_path, _env(), source="e.yaml")
    with pytest.raises(ProtocolError, match=r"'train\.py' does not exist in the workdir"):
        check_command([sys.executable, "train.py"], tmp_path, _env(), source="e.yaml")
    with pytest.raises(ProtocolError, match=r"workdir .* does not exist"):
        check_command([sys.executable], tmp_path / "nowhere", _env(), source="e.yaml")


def test_says_when_the_trials_python_is_not_mlaudits(tmp_path: Path):
    other = tmp_path / "otherenv" / "bin"
    other.mkdir(parents=True)
    (other / "python3").symlink_to(sys.executable)  # another venv: same binary, other folder
    found = check_command(
        ["python3", "-c", "pass"],
        tmp_path,
        _env(other),
        source="e.yaml",
        runner_python=sys.executable,
    )
    assert found.notes()
    assert "is not the Python running mlaudit" in found.notes()[0]
    same = check_command(
        [sys.executable, "-c", "pass"],
        tmp_path,
        _env(),
        source="e.yaml",
        runner_python=sys.executable,
    )
    assert same.notes() == []


def _record(arm: str, status: str = "failed", reason: str = "exit code 1: No module named x"):
    return {"arm": arm, "status": status, "reason": reason, "trial_dir": f"trials/{arm}/0"}


def test_stops_when_every_arms_first_trial_failed_alike():
    watch = FirstTrialWatch(["baseline", "no-a", "no-b"])
    assert watch.observe(_record("baseline")) is False
    assert watch.observe(_record("no-a")) is False
    assert watch.observe(_record("no-a", "succeeded", "")) is False  # not its first
    assert watch.observe(_record("no-b")) is True
    assert watch.stop_reason is not None
    assert "No module named x" in watch.stop_reason
    assert "3 arms" in watch.stop_reason


@pytest.mark.parametrize(
    "last",
    [_record("no-b", "succeeded", ""), _record("no-b", reason="exit code 2: other")],
    ids=["one-arm-succeeded", "different-reason"],
)
def test_runs_on_when_one_arm_differs(last):
    watch = FirstTrialWatch(["baseline", "no-a", "no-b"])
    watch.observe(_record("baseline"))
    watch.observe(_record("no-a"))
    assert watch.observe(last) is False
    assert watch.stop_reason is None
