"""One trial process: start errors, timeouts, and dying with the runner.

Both ways of setting the parent-death signal run here: util-linux's setpriv in
front of the command (the fast path) and the preexec hook (where setpriv is missing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from audit.protocol import trial as trial_module
from audit.protocol.trial import TrialSpec, run_trial

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

WAYS = ["setpriv", "preexec"]


@pytest.fixture(params=WAYS)
def way(request, monkeypatch):
    if request.param == "setpriv":
        if trial_module._die_with_parent_prefix() is None:
            pytest.fail("setpriv --pdeathsig is missing: tests/tools/system-deps.sh installs it")
    else:
        monkeypatch.setattr(trial_module, "_die_with_parent_prefix", lambda: None)
    return request.param


def _spec(tmp_path: Path, argv: list[str], *, cwd: Path | None = None, timeout: float = 30):
    return TrialSpec(
        trial_id="baseline/0",
        arm="baseline",
        seed=0,
        argv=tuple(argv),
        cwd=cwd or tmp_path,
        trial_dir=tmp_path / "trial",
        env={"PATH": os.environ["PATH"]},
        timeout_seconds=timeout,
        metrics_file="metrics.json",
    )


def _ignore(pid: int, attempt: int) -> None:
    pass


def test_a_trial_that_writes_metrics_succeeds(tmp_path, way):
    script = "import os,json; json.dump({'score': 1}, open('trial/metrics.json', 'w'))"
    outcome = run_trial(_spec(tmp_path, [sys.executable, "-c", script]), _ignore)
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.metrics == {"score": 1.0}


def test_argv_reaches_the_command_unchanged(tmp_path, way):
    script = "import sys,json; json.dump({'n': len(sys.argv)}, open('trial/metrics.json', 'w'))"
    argv = [sys.executable, "-c", script, "a=1; rm -rf /", "--", "$(x)"]
    outcome = run_trial(_spec(tmp_path, argv), _ignore)
    assert outcome.metrics == {"n": 4.0}


@pytest.mark.parametrize(
    ("argv", "cwd", "expected"),
    [
        (["no-such-program-xyz"], None, "cannot start 'no-such-program-xyz': No such file"),
        (["./missing.sh"], None, "cannot start './missing.sh': No such file"),
        (["./not-executable.sh"], None, "cannot start './not-executable.sh': Permission denied"),
        (["true"], "nowhere", "does not exist"),
    ],
)
def test_a_command_that_cannot_start_is_a_failure_with_a_reason(tmp_path, way, argv, cwd, expected):
    (tmp_path / "not-executable.sh").write_text("#!/bin/sh\n")
    outcome = run_trial(_spec(tmp_path, argv, cwd=tmp_path / cwd if cwd else None), _ignore)
    assert outcome.status == "failed"
    assert expected in str(outcome.reason)


def test_a_program_found_through_a_relative_path_entry_starts(tmp_path, way):
    tools = tmp_path / "tools"
    tools.mkdir()
    program = tools / "emit"
    program.write_text("#!/bin/sh\necho '{\"score\": 2}' > trial/metrics.json\n")
    program.chmod(0o755)
    spec = _spec(tmp_path, ["emit"])
    spec = TrialSpec(**{**spec.__dict__, "env": {"PATH": f"tools{os.pathsep}/usr/bin:/bin"}})
    outcome = run_trial(spec, _ignore)
    assert outcome.status == "succeeded", outcome.reason


def test_a_hung_trial_times_out(tmp_path, way):
    outcome = run_trial(
        _spec(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5),
        _ignore,
    )
    assert outcome.status == "timeout"
    assert outcome.duration_seconds < 30


RUNNER = """
import sys, threading
from pathlib import Path
from audit.protocol import trial as trial_module
from audit.protocol.trial import TrialSpec, run_trial
if sys.argv[2] == "preexec":
    trial_module._die_with_parent_prefix = lambda: None
tmp = Path(sys.argv[1])
spec = TrialSpec(
    trial_id="baseline/0", arm="baseline", seed=0,
    argv=(sys.executable, "-c", "import time; time.sleep(60)"),
    cwd=tmp, trial_dir=tmp / "trial", env={}, timeout_seconds=120, metrics_file="m.json",
)
def started(pid, attempt):
    (tmp / "pid").write_text(str(pid))
# A worker thread starts it, as in the runner: the signal follows that thread's death.
threading.Thread(target=run_trial, args=(spec, started)).start()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_trial_dies_with_its_runner(tmp_path, way):
    runner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(RUNNER), str(tmp_path), way],
        start_new_session=True,
    )
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


def test_setpriv_is_probed_once_however_many_workers_ask_at_once(monkeypatch):
    import threading

    probes = []
    real_run = subprocess.run

    def slow_probe(*args, **kwargs):
        probes.append(args[0])
        time.sleep(0.05)  # long enough for every worker to ask while it runs
        return real_run(*args, **kwargs)

    monkeypatch.setattr(trial_module.subprocess, "run", slow_probe)
    trial_module._setpriv_prefix.cache_clear()
    try:
        answers = []
        workers = [
            threading.Thread(target=lambda: answers.append(trial_module._die_with_parent_prefix()))
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        trial_module._setpriv_prefix.cache_clear()
    assert len(probes) == 1
    assert len(set(answers)) == 1
    assert answers[0] is not None
