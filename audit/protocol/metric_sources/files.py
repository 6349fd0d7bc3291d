"""Reading a trial's source files as untrusted input: regular files inside the trial dir only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SOURCE_BYTES = 256 * 1024 * 1024


class SourceProblem(ValueError):
    """A source file cannot be used; the message names the file and why."""


def relative(path: Path, trial_dir: Path) -> str:
    return path.relative_to(trial_dir).as_posix()


def checked_dir(trial_dir: Path, name: str, what: str) -> Path:
    """`trial_dir/name` if it is a real directory inside the trial directory."""
    path = trial_dir / name
    if path.is_symlink():
        raise SourceProblem(f"{name}: a symbolic link is refused; the trial must write a directory")
    if not path.is_dir():
        raise SourceProblem(f"the trial wrote no {what} directory {name}")
    if not path.resolve().is_relative_to(trial_dir.resolve()):
        raise SourceProblem(f"{name}: the path leaves the trial directory")
    return path


def regular_files(root: Path, trial_dir: Path) -> list[Path]:
    """Every file under `root` (sorted), refusing symbolic links anywhere below it."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in sorted(dirs + names):
            path = Path(folder) / name
            if path.is_symlink():
                raise SourceProblem(f"{relative(path, trial_dir)}: a symbolic link is refused")
        found.extend(Path(folder) / name for name in names)
    return sorted(found)


def read_bytes(path: Path, trial_dir: Path, limit: int = MAX_SOURCE_BYTES) -> bytes:
    name = relative(path, trial_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise SourceProblem(f"{name}: unreadable ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SourceProblem(f"{name}: not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise SourceProblem(f"{name}: larger than {limit} bytes")
    return data
