"""Nothing a trial starts outlives it: not at its end, its timeout, nor the runner's death.

A trial runs in its own session and process group, but a descendant can leave
both (`setsid`, a double fork), so killing the group is not enough. Three nets:

1. Every attempt's environment carries a mark unique to it
   (MLAUDIT_TRIAL_MARK). When the attempt ends, every process whose
   environment still holds the mark is killed, wherever it was re-parented.
2. On Linux the runner is a child subreaper (PR_SET_CHILD_SUBREAPER): orphans
   of a trial are re-parented to the runner instead of init, so the runner
   reaps what it kills and no zombie is left to init; and the sweep of net 1
   reads only the runner's descendants, not every process's environment.
3. One watchdog process per runner (its own session, stdin a pipe from the
   runner) waits for that pipe to close - the runner exited or was SIGKILLed -
   and then kills every process holding one of the runner's marks.

And a resumed run kills the process groups its killed predecessor journaled
as started and never finished, when they are provably still that trial's
(same session, started no earlier than the trial): a pid reused since is spared.
An engine's driver (Ray) may die between submitting a trial and hearing that it
started, so it journals a submission token first and the trial's environment
carries it (MLAUDIT_TRIAL_SUBMISSION): the resume sweeps every process on this
machine that holds a token of a trial left in flight.

Limit: a descendant that scrubs its environment (`env -i`) escapes nets 1 and
3; a cgroup would catch it, but needs a delegated cgroup v2 tree that CI
containers rarely grant, so it is not used. This module never decides a
trial's status; it only cleans up after it.
"""

from __future__ import annotations

# Only light standard modules at the top (no pathlib, typing, secrets, ctypes): the
# watchdog imports this module in a fresh interpreter, beside the first trials.
import contextlib
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

MARK_VARIABLE = "MLAUDIT_TRIAL_MARK"
SUBMISSION_VARIABLE = "MLAUDIT_TRIAL_SUBMISSION"
PR_SET_CHILD_SUBREAPER = 36
SWEEP_ROUNDS = 50  # a fork bomb racing the sweep is given up on after this many rounds
REAP_SECONDS = 2.0

_lock = threading.Lock()
_counter = itertools.count(1)
_state: dict[str, object] = {}  # this process's pid, mark prefix and watchdog


def _prefix() -> str:
    """Token prefix of this runner process (recomputed after a fork)."""
    with _lock:
        if _state.get("pid") != os.getpid():
            _state.clear()
            _state["pid"] = os.getpid()
            _state["prefix"] = f"{os.getpid()}-{os.urandom(6).hex()}-"
        return str(_state["prefix"])


def new_mark() -> str:
    return f"{_prefix()}{next(_counter)}"


def prepare_runner() -> None:
    """Once per runner process: become a subreaper and start the watchdog."""
    prefix = _prefix()
    with _lock:
        if _state.get("ready"):
            return
        _state["ready"] = True
        _state["subreaper"] = _become_subreaper()
        _state["watchdog"] = _start_watchdog(prefix)


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _start_watchdog(prefix: str) -> int | None:
    """Spawn the watchdog; return the write end of its stdin pipe (kept open until we die).

    Own session: a Ctrl-C or a CI cancel that kills the runner's group spares it.
    No stdout/stderr: a survivor holding CI's output pipe would hang the job.
    posix_spawn rather than Popen: the watchdog outlives every Popen object.
    """
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {package_root!r}); "
        "from audit.protocol.containment import watch; watch(sys.argv[1])"
    )
    read_end, write_end = os.pipe()  # both close-on-exec; the spawn dup2s the read end
    try:
        os.posix_spawn(
            sys.executable,
            # -I -S: it needs only the standard library and this package (on its path
            # above), so neither site-packages nor PYTHON* variables are read at start.
            [sys.executable, "-I", "-S", "-c", code, prefix],
            {k: v for k, v in os.environ.items() if k != MARK_VARIABLE},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
        )
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return write_end


def watch(prefix: str) -> None:
    """The watchdog's body: block until the runner is gone, then sweep its marks."""
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()
    sweep(prefix, exact=False)


def _candidates() -> list[int]:
    """The pids that may hold a mark of this runner.

    With the runner a subreaper, whatever a trial started and left behind is re-parented
    to the runner (or to a descendant that is itself a subreaper), never to init: the
    runner's descendants are all there is to look at, not every process on the machine.
    The watchdog (another process, after the runner died) and kernels without
    /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN) look at every process.
    Limit: a process a trial has an outside daemon start with its environment is not
    its descendant; the scan of every process would catch it, this one does not.
    """
    me = os.getpid()
    if _state.get("subreaper") and _state.get("pid") == me:
        found = _descendants(me)
        if found is not None:
            return found
    return _every_process()


def _every_process() -> list[int]:
    me = os.getpid()
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != me]


def _descendants(root: int, proc: str | os.PathLike[str] = "/proc") -> list[int] | None:
    """Every descendant of `root` from the kernel's children lists; None where there are none."""
    base = os.fspath(proc)
    if not os.path.exists(f"{base}/{root}/task/{root}/children"):
        return None
    found: list[int] = []
    pending = [root]
    while pending:
        # Plain strings, not pathlib: this runs after every trial, once per thread of the
        # runner, and a Ray worker has a score of threads.
        tasks = f"{base}/{pending.pop()}/task"
        try:
            names = os.listdir(tasks)
        except OSError:  # gone
            continue
        for task in names:
            listed = _read(f"{tasks}/{task}/children")
            try:
                children = [int(c) for c in listed.split()] if listed else []
            except ValueError:
                continue
            found.extend(children)
            pending.extend(children)
    return found


def _read(path: str) -> bytes | None:
    """A /proc file's bytes, None when it is gone or not ours to read.

    Plain descriptors, not open(): the sweep reads a few of these after every trial,
    and a buffered file object costs five more system calls per file (fstat twice,
    the isatty ioctl, two seeks) and its Python objects, taken from the trials' CPU.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _holders(
    needles: tuple[bytes, ...], exact: bool, candidates: list[int], variable: str
) -> list[int]:
    """Pids whose environment holds one of `needles` (`NAME=value`, whole or as a prefix)."""
    found = []
    for pid in candidates:
        environ = _read(f"/proc/{pid}/environ")
        if environ is None:  # gone, or not ours to read
            continue
        if any(
            item.startswith(needles) and (not exact or item in needles)
            for item in environ.split(b"\0")
            if item.startswith(variable.encode())
        ):
            found.append(pid)
    return found


def sweep(mark: str, *, exact: bool = True) -> list[int]:
    """Kill every process holding the mark (or, not exact, a mark with this prefix).

    Repeats until a round finds nobody, so a child forked between two rounds is
    caught in the next; then reaps whatever of them became the runner's child.
    """
    return _sweep(MARK_VARIABLE, (mark,), exact, _candidates)


def sweep_submission(*tokens: str) -> list[int]:
    """Kill every process on this machine holding one of these trials' submission tokens.

    Every process, not the runner's descendants: the trial was started by an engine's
    worker for a driver that has since died. One scan of /proc for all the tokens.
    """
    return _sweep(SUBMISSION_VARIABLE, tokens, True, _every_process) if tokens else []


def _sweep(
    variable: str, values: Sequence[str], exact: bool, candidates: Callable[[], list[int]]
) -> list[int]:
    if not os.path.isdir("/proc"):
        return []
    needles = tuple(f"{variable}={value}".encode() for value in values)
    killed: list[int] = []
    for _ in range(SWEEP_ROUNDS):
        holders = _holders(needles, exact, candidates(), variable)
        if not holders:
            break
        for pid in holders:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.001)
    _reap(killed)
    return killed


def _reap(pids: list[int]) -> None:
    """Collect the exit status of killed processes that are (or become) our children.

    Only pids that held a trial mark are waited for; those were never started
    by a Popen of this process (the trial itself is already waited), so no other
    thread's wait is stolen.
    """
    killed = set(pids)
    pending = list(pids)
    deadline = time.monotonic() + REAP_SECONDS
    while pending and time.monotonic() < deadline:
        still = []
        for pid in pending:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # Not our child (yet): a subreaper inherits it once its killed parent is gone.
                if _parent(pid) in killed:
                    still.append(pid)
                continue
            if done == 0:
                still.append(pid)
        pending = still
        if pending:
            time.sleep(0.002)


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    try:
        return int(fields[1]) if fields else None
    except (IndexError, ValueError):
        return None


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _stat(pid: int) -> list[str] | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # Fields after the parenthesised command name (which may hold spaces); index 0 is state.
    return stat.decode("utf-8", "replace").rsplit(")", 1)[-1].split()


def process_start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot): with the pid, who it is."""
    fields = _stat(pid)
    return fields[19] if fields else None


def _group_is_ours(pgid: int, ticks: str) -> bool:
    """Whether a process group is still the trial's: its session (setsid) and start time match."""
    if process_start_ticks(pgid) == ticks:
        return True
    # The leader died (PR_SET_PDEATHSIG) but what it spawned may live on in its session.
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat(int(name))
        if (
            fields
            and fields[2] == str(pgid)
            and fields[3] == str(pgid)
            and int(fields[19]) >= int(ticks)
        ):
            return True
    return False


def kill_leftovers(started: Sequence[Mapping[str, object]]) -> None:
    """Kill process groups a killed runner left behind (same group, session and age).

    `started` are the journal's `started` events (pid and its start ticks) of
    trials that never finished.
    """
    for event in started:
        pid, ticks = event.get("pid"), event.get("pid_start")
        if isinstance(pid, int) and isinstance(ticks, str) and _group_is_ours(pid, ticks):
            kill_group(pid)
