"""The data under test as DVC records it: hashes from dvc.lock / .dvc files, and `dvc status`.

Hashes are read from the lock files (plain YAML) so recording them is cheap;
`dvc status` goes through DVC's Python API, imported only here, with analytics off.
`start_dvc_status` runs that same check in a child process, so importing DVC and
building its Repo (most of `ablate run`'s fixed cost) overlaps the approval check, the
plan and the first trials; the run makes no trial's result durable or public before
the answer is clean, and a stale workspace stops it with none of its trials counted.
`prepare_dvc_status` starts that child's DVC import before the EDD is even read.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from audit.errors import ProvenanceError


@dataclass(frozen=True)
class TrackedOut:
    path: str  # relative to the project root, posix
    hash: str
    source: str  # dvc.lock or the .dvc file that records it


def _out_hash(out: dict[str, Any]) -> str | None:
    for key in ("md5", "etag", "checksum"):
        if isinstance(out.get(key), str):
            return str(out[key])
    return None


def _read_yaml(path: Path) -> Any:
    # Imported here: `ablate run` imports this module to start DVC's import first.
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ProvenanceError(f"{path}: cannot read: {error}") from None


def _lock_outs(root: Path) -> Iterator[TrackedOut]:
    lock = root / "dvc.lock"
    if not lock.is_file():
        return
    document = _read_yaml(lock) or {}
    stages = document.get("stages", {}) if isinstance(document, dict) else {}
    for stage in stages.values() if isinstance(stages, dict) else []:
        wdir = PurePosixPath(str(stage.get("wdir", "."))) if isinstance(stage, dict) else None
        for out in stage.get("outs", []) if isinstance(stage, dict) else []:
            digest = _out_hash(out) if isinstance(out, dict) else None
            if digest and wdir is not None:
                path = (wdir / str(out["path"])).as_posix().removeprefix("./")
                yield TrackedOut(path, digest, "dvc.lock")


def _dvc_file_outs(root: Path, data_path: str) -> Iterator[TrackedOut]:
    parts = PurePosixPath(data_path).parts
    for depth in range(len(parts), 0, -1):
        candidate = PurePosixPath(*parts[:depth])
        dvc_file = root / f"{candidate}.dvc"
        if not dvc_file.is_file():
            continue
        document = _read_yaml(dvc_file) or {}
        for out in document.get("outs", []) if isinstance(document, dict) else []:
            digest = _out_hash(out) if isinstance(out, dict) else None
            if digest:
                path = (candidate.parent / str(out["path"])).as_posix().removeprefix("./")
                yield TrackedOut(path, digest, dvc_file.relative_to(root).as_posix())


def _covers(out_path: str, data_path: str) -> bool:
    return data_path == out_path or data_path.startswith(out_path.rstrip("/") + "/")


def tracked_outs(root: Path, data_paths: Sequence[str]) -> dict[str, TrackedOut]:
    """For every EDD data path, the DVC out that records it (the path itself or a parent dir)."""
    lock_outs = list(_lock_outs(root))
    found: dict[str, TrackedOut] = {}
    missing = []
    for data_path in data_paths:
        candidates = [o for o in lock_outs if _covers(o.path, data_path)]
        candidates += [o for o in _dvc_file_outs(root, data_path) if _covers(o.path, data_path)]
        if not candidates:
            missing.append(data_path)
            continue
        # The most specific out wins (a file recorded inside a tracked directory).
        found[data_path] = max(candidates, key=lambda o: len(o.path))
    if missing:
        raise ProvenanceError(
            f"data path {missing[0]!r} is not tracked by DVC (no dvc.lock out or .dvc file "
            "records it); track it with `dvc add` or a dvc.yaml stage and commit the lock"
        )
    return found


def data_hashes(root: Path, data_paths: Sequence[str]) -> dict[str, str]:
    """EDD data path -> the hash DVC recorded for it (md5 as written in the lock)."""
    return {path: out.hash for path, out in tracked_outs(root, data_paths).items()}


def dvc_status(root: Path, data_paths: Sequence[str]) -> list[str]:
    """Problems `dvc status` reports for the EDD's data; empty when the workspace matches."""
    return _status_of(root, _status_targets(root, data_paths))


def _status_targets(root: Path, data_paths: Sequence[str]) -> list[str]:
    """What `dvc status` is asked about: the .dvc files and dvc.lock outs recording the data."""
    outs = tracked_outs(root, data_paths)
    return sorted({out.path if out.source == "dvc.lock" else out.source for out in outs.values()})


def _status_of(root: Path, targets: Sequence[str]) -> list[str]:
    """`dvc status` of these targets (paths relative to `root`), as problems."""
    # Nothing phones home, even when the caller forgot to say so.
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        # DVC's own dependencies (pygtrie) emit DeprecationWarnings that are not the user's.
        with warnings.catch_warnings(), Repo(str(root)) as repo:
            warnings.simplefilter("ignore", DeprecationWarning)
            # DVC resolves targets against the process's cwd, so make them absolute.
            status = repo.status(targets=[str(root / t) for t in targets])
    except DvcException as error:
        raise ProvenanceError(f"dvc status in {root}: {error}") from None
    return _describe_status(status, root)


def require_clean(problems: Sequence[str]) -> None:
    """Refuse data that does not match what DVC recorded (the problems `dvc_status` found)."""
    if problems:
        raise ProvenanceError(
            f"data does not match what DVC recorded: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint=_dvc_hint(problems),
        )


def _dvc_hint(problems: Sequence[str]) -> str:
    """What to do: fetch data that is absent (a fresh clone), or record data that changed."""
    if all(p.endswith((" not in cache", " deleted")) for p in problems):
        return (
            "the data is not in this workspace, as in a fresh clone: fetch it with "
            "`dvc pull`, or `dvc checkout` if the cache holds it"
        )
    # Each problem starts with where DVC recorded the data: a `.dvc` file (`dvc add`) or a
    # dvc.yaml stage, whose record is dvc.lock. The hint names the files to commit.
    records = {problem.split(": ", 1)[0] for problem in problems}
    files = sorted(r for r in records if r.endswith(".dvc"))
    if len(files) < len(records):
        files.append("dvc.lock")
    return (
        "record the data as it is now (`dvc commit`, or `dvc add` / `dvc repro`) "
        f"and commit {', '.join(files)}"
    )


def _shown(target: str, root: Path) -> str:
    """DVC names targets relative to the process's cwd; show them relative to the project."""
    file, colon, stage = target.partition(":")
    try:
        relative = Path(os.path.abspath(file)).relative_to(root).as_posix()
    except ValueError:
        return target
    if colon and relative == "dvc.yaml":
        return stage
    return f"{relative}{colon}{stage}"


def _describe_status(status: dict[str, Any], root: Path) -> list[str]:
    problems = []
    for raw_target, changes in sorted(status.items()):
        target = _shown(raw_target, root.resolve())
        for change in changes if isinstance(changes, list) else [changes]:
            if isinstance(change, dict):
                for kind, detail in change.items():
                    if isinstance(detail, dict):
                        for path, state in detail.items():
                            problems.append(f"{target}: {kind}: {path} {state}")
                    else:
                        problems.append(f"{target}: {kind}: {detail}")
            else:
                problems.append(f"{target}: {change}")
    return problems


# The child lives for one answer: the cyclic collector only costs it CPU (about a tenth,
# mostly while DVC imports), and that CPU is taken from the trials it overlaps. For the
# same reason it leaves without the interpreter's shutdown, which would collect and free
# every object DVC made (about 0.05 s more); the answer is flushed first, and the Repo,
# its state database and its lock were closed by `dvc_status` already.
# It imports DVC before it knows the question (root and targets, one JSON line on
# stdin): the import is most of the check's cost, and the caller learns the question
# only after its own imports and the EDD's load, time the other core would sit idle.
# The caller, which has read YAML already, names the targets: the child never loads a
# YAML library of its own (DVC reads its files with ruamel.yaml).
_CHILD = """import gc, json, os, sys
gc.disable()
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
import dvc.repo
from pathlib import Path
from audit.errors import ProvenanceError
from audit.provenance.dvc import _status_of
question = sys.stdin.readline()
if not question:  # nothing to ask after all
    os._exit(0)
root, *targets = json.loads(question)
try:
    answer = {"problems": _status_of(Path(root), targets)}
except ProvenanceError as error:
    answer = {"error": error.message, "hint": error.hint}
sys.stdout.write(json.dumps(answer))
sys.stdout.flush()
os._exit(0)
"""


class PendingStatus:
    """`dvc_status(root, data_paths)` running in a child process; `result()` waits for it.

    The child may start (`warm`) before the question is known: `ask` sends it. The
    answer is exactly `dvc_status`'s (the child calls it); a child that cannot answer
    (crashed, killed, unparsable output) is never read as clean: the check then runs here.
    """

    def __init__(self, *, warm: bool) -> None:
        self._root: Path | None = None
        self._paths: list[str] = []
        self._child: subprocess.Popen[str] | None = self._spawn() if warm else None
        self._waited: subprocess.Popen[str] | None = None  # the child result() waits on
        self._stopped = False
        self._refused: ProvenanceError | None = None  # the data is not DVC's: nothing asked

    @staticmethod
    def _spawn() -> subprocess.Popen[str]:
        package_root = str(Path(__file__).resolve().parents[2])
        return subprocess.Popen(
            [sys.executable, "-c", _CHILD, package_root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DVC_NO_ANALYTICS": "1"},
            text=True,
        )

    def ask(self, root: Path, data_paths: Sequence[str]) -> PendingStatus:
        """Send the question; with no data paths nothing is asked and the child goes."""
        self._root, self._paths = root, list(data_paths)
        if not self._paths:
            self.close()  # nothing DVC-tracked: collect_provenance never asks
            return self
        try:
            targets = _status_targets(root, self._paths)
        except ProvenanceError as error:  # result() raises it, as dvc_status would
            self._refused = error
            self.close()
            return self
        if self._child is None:
            self._child = self._spawn()
        stdin = self._child.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps([str(root), *targets]) + "\n")
            stdin.close()
        except OSError:
            pass  # the child is gone: result() sees no answer and checks here
        return self

    def result(self) -> list[str]:
        """The problems `dvc status` reports; raises ProvenanceError as `dvc_status` does."""
        assert self._root is not None, "ask() comes before result()"
        if self._refused is not None:
            raise self._refused
        child, self._child = self._child, None
        if child is None:
            return dvc_status(self._root, self._paths)
        self._waited = child
        out = _collect(child)
        if self._stopped:  # close() killed it: no answer, and none is needed any more
            raise ProvenanceError("dvc status was stopped before it answered (the run ended)")
        try:
            answer = json.loads(out) if child.returncode == 0 else None
        except ValueError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            raise ProvenanceError(answer["error"], hint=str(answer.get("hint") or ""))
        if isinstance(answer, dict) and isinstance(answer.get("problems"), list):
            return [str(problem) for problem in answer["problems"]]
        return dvc_status(self._root, self._paths)

    def clean(self) -> futures.Future[None]:
        """Wait for the answer in a thread: the future fails (ProvenanceError) unless clean.

        The run starts trials meanwhile and publishes none before this has passed.
        """
        answer: futures.Future[None] = futures.Future()

        def wait() -> None:
            try:
                require_clean(self.result())
            except BaseException as error:  # handed to whoever waits for the answer
                answer.set_exception(error)
            else:
                answer.set_result(None)

        threading.Thread(target=wait, name="mlaudit-dvc-status", daemon=True).start()
        return answer

    def close(self) -> None:
        """Stop the child if its answer is still out (the run stopped before it)."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            _collect(child)
        waited = self._waited
        if waited is not None and waited.poll() is None:
            self._stopped = True
            waited.kill()  # its waiter (clean()'s thread) reports the stop


def _collect(child: subprocess.Popen[str]) -> str:
    """The child's output once it exited. Not communicate(): that flushes a stdin which
    `ask` may have closed already, and on Python 3.11 raises for it."""
    if child.stdin is not None and not child.stdin.closed:
        with contextlib.suppress(OSError):
            child.stdin.close()
    assert child.stdout is not None
    with child.stdout:
        out = child.stdout.read()
    child.wait()
    return out


def prepare_dvc_status(start: Path) -> PendingStatus:
    """A child that imports DVC now, where `start` is inside a DVC project (a `.dvc`
    folder in it or above); `ask` it once the data paths are known, `close` it always."""
    folders = (start, *start.parents)
    return PendingStatus(warm=any((folder / ".dvc").is_dir() for folder in folders))


def start_dvc_status(root: Path, data_paths: Sequence[str]) -> PendingStatus:
    """`dvc status` for the data paths, answered by a child started now."""
    return PendingStatus(warm=False).ask(root, data_paths)
