"""Pre-flight: before the first trial, check that the trial command can start at all.

It resolves the program the way the trial's exec will (PATH entries relative to the
workdir), checks the workdir exists and that a Python script named on the command
line is there, and says which interpreter will run. It runs nothing: importing the
user's code or starting the interpreter would be a trial outside the journal.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.errors import Location, ProtocolError


@dataclass(frozen=True)
class Preflight:
    """What the trials will run: the program as written, where it resolved, the workdir."""

    program: str
    resolved: Path
    workdir: Path
    via_path: bool  # found by searching PATH (not given as a path)
    script: Path | None = None
    runner_python: str | None = None  # the Python running mlaudit, when it differs

    def describe(self) -> str:
        how = f" (found as {self.program!r} on PATH)" if self.via_path else ""
        script = f" {self.script}" if self.script else ""
        return f"trials will run {self.resolved}{script}{how} in {self.workdir}"

    def notes(self) -> list[str]:
        if self.runner_python is None:
            return []
        return [
            f"the trials' {self.program!r} is not the Python running mlaudit "
            f"({self.runner_python}): the trial script's imports must be installed there"
        ]

    def to_dict(self) -> dict[str, str | bool | None]:
        return {
            "program": self.program,
            "resolved": str(self.resolved),
            "workdir": str(self.workdir),
            "via_path": self.via_path,
            "script": str(self.script) if self.script else None,
        }


def check_command(
    argv: Sequence[str],
    workdir: Path,
    env: Mapping[str, str],
    *,
    source: str,
    runner_python: str | None = None,
) -> Preflight:
    """Resolve `argv[0]` as the trial's exec would, or raise ProtocolError saying why."""
    where = Location(source, "/protocol/command")
    if not workdir.is_dir():
        raise ProtocolError(
            f"the trials' workdir {workdir} does not exist",
            location=Location(source, "/protocol/workdir"),
        )
    program = argv[0]
    via_path = os.sep not in program
    resolved = _resolve(program, workdir, env.get("PATH", os.defpath)) if via_path else None
    if not via_path:
        resolved = _executable(workdir / program)
    if resolved is None:
        searched = "on PATH" if via_path else f"relative to {workdir}"
        raise ProtocolError(
            f"the trial command {program!r} was not found {searched} (or is not executable)",
            location=where,
            hint="activate the environment that has the training dependencies, "
            "or write the interpreter's full path in protocol.command",
        )
    script = _python_script(argv, workdir, resolved, where)
    other = _other_python(resolved, runner_python)
    return Preflight(program, resolved, workdir, via_path, script, other)


def _resolve(program: str, workdir: Path, path: str) -> Path | None:
    # The child searches its own PATH; relative entries count from its workdir.
    search = os.pathsep.join(str(workdir / entry) for entry in path.split(os.pathsep))
    found = shutil.which(program, path=search)
    return Path(found).absolute() if found else None


def _executable(path: Path) -> Path | None:
    return path.absolute() if path.is_file() and os.access(path, os.X_OK) else None


def _is_python(program: Path) -> bool:
    return program.name.startswith("python")


def _python_script(
    argv: Sequence[str], workdir: Path, interpreter: Path, where: Location
) -> Path | None:
    """`python train.py ...`: train.py must exist, or every trial fails the same way."""
    if not _is_python(interpreter) or len(argv) < 2 or not argv[1].endswith(".py"):
        return None
    script = workdir / argv[1]
    if not script.is_file():
        raise ProtocolError(
            f"the trial script {argv[1]!r} does not exist in the workdir {workdir}", location=where
        )
    return Path(argv[1])


def _other_python(interpreter: Path, runner_python: str | None) -> str | None:
    if runner_python is None or not _is_python(interpreter):
        return None
    same = _same_environment(interpreter, Path(runner_python))
    return None if same else runner_python


def _same_environment(a: Path, b: Path) -> bool:
    # A venv's python is a symlink to the system one, so compare the folders they are
    # in (which decide the environment), not where the symlinks end.
    return a.absolute().parent.resolve() == b.absolute().parent.resolve()
