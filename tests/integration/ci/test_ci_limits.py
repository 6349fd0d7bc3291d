"""The heavy CI steps run under limits of their own, with a message naming the step.

Regression from the hardening review (issue 16): on a cold, loaded machine the
session fixture that builds the images and runs the GitLab pipeline exceeded
pytest-timeout's 600 s, and every test using it errored with no hint why.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ci_support import BUILD_SECONDS, HEAVY_TEST_SECONDS, PIPELINE_SECONDS, run_limited


def test_a_step_past_its_limit_fails_naming_the_step_and_the_knob(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failed:
        run_limited(
            ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; sleep 60"],
            seconds=0.5,
            what="building the tool image",
            knob="MLAUDIT_CI_BUILD_TIMEOUT",
        )
    assert time.monotonic() - started < 10
    message = str(failed.value)
    assert "building the tool image did not finish within 0 s" in message
    assert "MLAUDIT_CI_BUILD_TIMEOUT=SECONDS" in message
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    # The whole session went, not only the direct child (it would hold the pipes).
    assert not Path(f"/proc/{grandchild}").exists() or (
        Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    )


def test_a_step_within_its_limit_returns_its_output() -> None:
    proc = run_limited(["sh", "-c", "echo out; echo err >&2; exit 3"], seconds=30, what="x")
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out\n", "err\n")


def test_the_heavy_tests_get_more_time_than_their_steps_take() -> None:
    assert HEAVY_TEST_SECONDS > 2 * BUILD_SECONDS + PIPELINE_SECONDS > 600


@pytest.mark.buildah  # marked like the image tests, so it gets what they get; needs no buildah
def test_buildah_tests_carry_the_heavy_timeout(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None
    assert marker.args == (HEAVY_TEST_SECONDS,)
