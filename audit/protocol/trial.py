"""Run one trial: the command without a shell, in its own process group, with a timeout.

The child gets its own session (so a timeout can kill the whole group), anything
that leaves it is found and killed by audit.protocol.containment, and, on
Linux, dies with the runner (PR_SET_PDEATHSIG, set by util-linux's setpriv or else
in a preexec hook), so a SIGKILLed runner leaves no trial behind to finish
unobserved. Output goes to files in the trial directory;
the metrics file is read afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audit.protocol import containment
from audit.protocol.foreign_runs import context_env
from audit.protocol.metric_sources import MetricSource, SourceReading, TrialRun, read_source
from audit.protocol.metrics import printable

OVERRIDES_PLACEHOLDER = "{overrides}"
STDOUT_NAME = "stdout.log"
STDERR_NAME = "stderr.log"


@dataclass(frozen=True)
class TrialSpec:
    trial_id: str
    arm: str
    seed: int
    argv: tuple[str, ...]
    cwd: Path
    trial_dir: Path
    env: Mapping[str, str]
    timeout_seconds: float
    metrics_file: str
    required_metrics: tuple[str, ...] = ()
    transient_exit_codes: frozenset[int] = frozenset()
    max_retries: int = 0
    params_file: str | None = None
    params: Mapping[str, Any] | None = None
    metric_source: MetricSource | None = None  # None: the metrics file `metrics_file`
    trial_run: TrialRun | None = None  # metric source mlflow: the run the trial logs into


@dataclass
class TrialOutcome:
    status: str  # succeeded | failed | timeout
    metrics: dict[str, float] = field(default_factory=dict)
    exit_code: int | None = None
    reason: str | None = None
    attempts: int = 0
    duration_seconds: float = 0.0
    source: SourceReading | None = None  # what the metrics were read from, by digest


def expand_command(
    template: Sequence[str], overrides: Sequence[str], *, via: str
) -> tuple[str, ...]:
    """argv for one arm: `{overrides}` becomes one item per override (never a shell string)."""
    argv: list[str] = []
    for item in template:
        if item == OVERRIDES_PLACEHOLDER:
            if via == "argv":
                argv.extend(overrides)
        else:
            argv.append(item)
    return tuple(argv)


def trial_env(
    base_env: Mapping[str, str],
    *,
    seed: int,
    arm: str,
    trial_dir: Path,
    trial_id: str,
    edd_id: str | None = None,
) -> dict[str, str]:
    return {
        **base_env,
        # W&B / ClearML grouping and tags (audit.protocol.foreign_runs).
        **context_env(
            base_env, edd_id=edd_id, arm=arm, seed=seed, trial_id=trial_id, trial_dir=trial_dir
        ),
        "MLAUDIT_SEED": str(seed),
        "PYTHONHASHSEED": str(seed),
        "MLAUDIT_ARM": arm,
        "MLAUDIT_TRIAL_ID": trial_id,
        "MLAUDIT_TRIAL_DIR": str(trial_dir),
        # Nothing phones home from inside a trial either.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
    }


def _die_with_parent_hook() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return hook


_PROBE_LOCK = threading.Lock()


def _die_with_parent_prefix() -> tuple[str, ...] | None:
    """The setpriv prefix, probed once per process: parallel first trials wait for that one."""
    with _PROBE_LOCK:
        return _setpriv_prefix()


def probe_in_background() -> None:
    """Probe for setpriv while `ablate run` waits on git, not when the first trials start."""
    threading.Thread(target=_die_with_parent_prefix, name="mlaudit-setpriv", daemon=True).start()


@functools.cache
def _setpriv_prefix() -> tuple[str, ...] | None:
    """argv prefix that sets PR_SET_PDEATHSIG and execs the trial: util-linux's setpriv.

    Asking for it with `preexec_fn` instead makes CPython fork the whole runner
    rather than vfork it, and runs Python in the child: several milliseconds per
    trial, which a study of short trials pays hundreds of times. The death signal
    survives the exec; only set-user-ID programs clear it.
    """
    if not sys.platform.startswith("linux"):
        return None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    try:
        usage = subprocess.run(
            [setpriv, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (setpriv, "--pdeathsig", "KILL", "--") if "--pdeathsig" in usage else None


def _why_unstartable(spec: TrialSpec) -> str | None:
    """What would make exec fail, checked up front because setpriv does the exec."""
    program = spec.argv[0]
    if not spec.cwd.is_dir():
        problem = "No such file or directory"
    elif os.sep in program:
        target = spec.cwd / program
        if not target.is_file():
            problem = "No such file or directory"
        elif not os.access(target, os.X_OK):
            problem = "Permission denied"
        else:
            return None
    else:
        # The child searches its own PATH, relative entries from its own workdir.
        search = [str(spec.cwd / d) for d in spec.env.get("PATH", os.defpath).split(os.pathsep)]
        if shutil.which(program, path=os.pathsep.join(search)) is not None:
            return None
        problem = "No such file or directory"
    return _cannot_start(spec, problem)


def _cannot_start(spec: TrialSpec, problem: str | None) -> str:
    where = "" if spec.cwd.is_dir() else f" (workdir {spec.cwd} does not exist)"
    return f"cannot start {spec.argv[0]!r}: {problem}{where}"


_PDEATHSIG = _die_with_parent_hook()


def _exited_within(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether the process exits within `timeout` seconds, noticed the moment it does.

    `Popen.wait(timeout=...)` polls with sleeps that double up to 50 ms, so a
    20 ms trial is seen to finish at about 31 ms. A pidfd becomes readable
    exactly when the process exits; where there is none (not Linux >= 5.3),
    fall back to the polling wait.
    """
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()  # not select(): a busy runner may hold fds above 1024
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, math.ceil(timeout * 1000))))
    finally:
        os.close(pidfd)


def _prepare(spec: TrialSpec, attempt: int) -> None:
    if attempt == 1 and spec.trial_dir.exists():
        # A fresh directory: nothing a killed earlier run left may pass as this trial's output.
        shutil.rmtree(spec.trial_dir)
    spec.trial_dir.mkdir(parents=True, exist_ok=True)
    # A previous attempt's outputs must not pass as this attempt's.
    if attempt > 1:
        for name in (STDOUT_NAME, STDERR_NAME):
            old = spec.trial_dir / name
            if old.exists():
                old.replace(spec.trial_dir / f"attempt-{attempt - 1}.{name}")
    (spec.trial_dir / spec.metrics_file).unlink(missing_ok=True)
    source_dir = spec.metric_source.dir if spec.metric_source else None
    if source_dir and attempt > 1:
        _remove(spec.trial_dir / source_dir)
    if spec.params_file is not None and spec.params is not None:
        target = spec.trial_dir / spec.params_file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(dict(spec.params), sort_keys=True), encoding="utf-8")


def _remove(path: Path) -> None:
    """An earlier attempt's DVCLive or TensorBoard directory: its points are not this one's."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _attempt(
    spec: TrialSpec, attempt: int, on_start: Callable[[int, int], None]
) -> tuple[int | None, bool, str | None]:
    """(exit code, timed out, reason it could not start)."""
    _prepare(spec, attempt)
    argv, preexec = list(spec.argv), _PDEATHSIG
    prefix = _die_with_parent_prefix()
    if prefix is not None:
        problem = _why_unstartable(spec)
        if problem is not None:
            return None, False, problem
        argv, preexec = [*prefix, *argv], None
    containment.prepare_runner()
    mark = containment.new_mark()
    try:
        return _run_contained(spec, argv, preexec, mark, attempt, on_start)
    finally:
        # Whatever the attempt started goes with it, even what left its session.
        containment.sweep(mark)


def _run_contained(
    spec: TrialSpec,
    argv: list[str],
    preexec: Callable[[], None] | None,
    mark: str,
    attempt: int,
    on_start: Callable[[int, int], None],
) -> tuple[int | None, bool, str | None]:
    # Plain descriptors, not open(): the child only needs the fds, and a buffered file
    # object adds system calls (fstat, the isatty ioctl, a seek) for each of them.
    with _log_fd(spec.trial_dir / STDOUT_NAME) as out, _log_fd(spec.trial_dir / STDERR_NAME) as err:
        try:
            process = subprocess.Popen(
                argv,
                cwd=spec.cwd,
                env={**spec.env, containment.MARK_VARIABLE: mark},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                # Without setpriv: only a prctl call runs between fork and exec.
                preexec_fn=preexec,
            )
        except OSError as error:
            return None, False, _cannot_start(spec, error.strerror)
        on_start(process.pid, attempt)
        if not _exited_within(process, spec.timeout_seconds):
            containment.kill_group(process.pid)
            process.wait()
            return None, True, None
        code = process.wait()
        # Whatever the trial left running in its group goes with it.
        containment.kill_group(process.pid)
        return code, False, None


@contextlib.contextmanager
def _log_fd(path: Path) -> Iterator[int]:
    """A trial's fresh (truncated) log file as a descriptor, closed on leaving."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        yield fd
    finally:
        os.close(fd)


def run_trial(spec: TrialSpec, on_start: Callable[[int, int], None]) -> TrialOutcome:
    """Run the trial, retrying only exit codes the EDD marks transient."""
    outcome = _run_attempts(spec, on_start)
    if spec.trial_run is not None and outcome.source is None:
        # A failed or timed-out trial logged into its run too: the sealed run and the record
        # must hold the same metrics, whatever the trial's status.
        outcome.source = read_source(_source(spec), spec.trial_dir, (), spec.trial_run)
        outcome.metrics = outcome.source.metrics or {}
    return outcome


def _source(spec: TrialSpec) -> MetricSource:
    return spec.metric_source or MetricSource(file=spec.metrics_file)


def _run_attempts(spec: TrialSpec, on_start: Callable[[int, int], None]) -> TrialOutcome:
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        code, timed_out, cannot_start = _attempt(spec, attempt, on_start)
        elapsed = time.monotonic() - started
        if cannot_start:
            return TrialOutcome(
                "failed", reason=cannot_start, attempts=attempt, duration_seconds=elapsed
            )
        if timed_out:
            return TrialOutcome(
                "timeout",
                reason=f"timed out after {spec.timeout_seconds:g} s; process group killed",
                attempts=attempt,
                duration_seconds=elapsed,
            )
        if code == 0:
            reading = read_source(
                _source(spec), spec.trial_dir, spec.required_metrics, spec.trial_run
            )
            if reading.metrics is None:
                return TrialOutcome(
                    "failed",
                    exit_code=0,
                    reason=reading.problem,
                    attempts=attempt,
                    duration_seconds=elapsed,
                )
            return TrialOutcome("succeeded", reading.metrics, 0, None, attempt, elapsed, reading)
        assert code is not None
        if code in spec.transient_exit_codes and attempt <= spec.max_retries:
            continue
        return TrialOutcome(
            "failed",
            exit_code=code,
            reason=_exit_reason(code, spec, attempt),
            attempts=attempt,
            duration_seconds=elapsed,
        )


def _exit_reason(code: int, spec: TrialSpec, attempt: int) -> str:
    text = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    if code in spec.transient_exit_codes:
        text += f" (transient, gave up after {attempt} attempts)"
    tail = _last_line(spec.trial_dir / STDERR_NAME)
    return f"{text}: {tail}" if tail else text


def _last_line(path: Path, limit: int = 4096) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - limit))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return printable(lines[-1], 300) if lines else ""
