"""The code under test as git sees it: commit, tree hash and whether the work tree is dirty.

A dirty tree is hashed as it is on disk (through a throw-away index), so the
recorded tree always names the code that actually ran.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.errors import ProvenanceError


@dataclass(frozen=True)
class GitState:
    root: Path
    commit: str | None
    tree: str
    dirty: bool
    dirty_paths: tuple[str, ...]
    code_tree: str = ""  # `tree` without the study's own files (EDD, approvals)


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    except OSError as error:
        raise ProvenanceError(f"cannot run git: {error.strerror}") from None
    if proc.returncode != 0:
        raise ProvenanceError(f"git {args[0]} in {root}: {_cause(proc.stderr)}")
    return proc.stdout


def _cause(stderr: str) -> str:
    """git's own words without its `hint:` lines, which say how to silence, not what failed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    cause = [line for line in lines if not line.startswith("hint:")]
    return " ".join(cause) or "failed"


def repo_root(path: Path) -> Path:
    """The top level of the git work tree holding `path`."""
    start = path if path.is_dir() else path.parent
    try:
        return Path(_git(start, "rev-parse", "--show-toplevel").strip()).resolve()
    except ProvenanceError:
        raise ProvenanceError(
            f"{start}: not inside a git repository (the code must be committed to be audited)"
        ) from None


def _excludes(root: Path, exclude: Sequence[Path]) -> list[str]:
    specs = []
    for path in exclude:
        try:
            relative = Path(path).resolve().relative_to(root)
        except ValueError:
            continue  # outside the repository: cannot make it dirty
        if str(relative) != "." and not _ignored(root, relative):
            specs.append(f":(exclude){relative.as_posix()}")
    return specs


def _ignored(root: Path, relative: Path) -> bool:
    """Whether git ignores `relative` already: it can never make the tree dirty then.

    Such a path must stay out of the pathspec: `git add -A -- . ':(exclude)out'`
    exits 1 ("paths are ignored") when out/ is gitignored, which is the usual layout.
    """
    name = relative.as_posix()
    # A directory pattern (`out/`) matches only a name ending in `/`.
    candidates = [name, f"{name}/"] if (root / relative).is_dir() else [name]
    for candidate in candidates:
        proc = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "-q", "--", candidate],
            capture_output=True,
            check=False,
        )
        if proc.returncode == 0:
            return True
    return False


def _head(root: Path) -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def _worktree_tree(root: Path, commit: str | None, pathspec: list[str]) -> str:
    # A temporary index keeps the user's staging area untouched.
    with tempfile.TemporaryDirectory(prefix="mlaudit-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if commit:
            _git(root, "read-tree", commit, env=env)
        _git(root, "add", "-A", "--", *pathspec, env=env)
        return _git(root, "write-tree", env=env).strip()


def _tree_without(root: Path, tree: str, paths: list[str]) -> str:
    with tempfile.TemporaryDirectory(prefix="mlaudit-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(root, "read-tree", tree, env=env)
        _git(root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *paths, env=env)
        return _git(root, "write-tree", env=env).strip()


def git_state(
    path: Path, *, exclude: Sequence[Path] = (), not_code: Sequence[Path] = ()
) -> GitState:
    """Describe the repository holding `path`; `exclude` (e.g. the run's out dir) never counts.

    `not_code` (the EDD and its approvals) is left out of `code_tree`, so signing or
    amending the study does not invalidate trials whose code did not change.
    """
    root = repo_root(path)
    commit = _head(root)
    pathspec = [".", *_excludes(root, exclude)]
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *pathspec)
    entries = [entry for entry in status.split("\0") if entry]
    dirty_paths = tuple(entry[3:] for entry in entries if len(entry) > 3 and entry[2] == " ")
    dirty = bool(entries)
    if commit and not dirty:
        tree = _git(root, "rev-parse", f"{commit}^{{tree}}").strip()
    else:
        tree = _worktree_tree(root, commit, pathspec)
    study_files = [p[len(":(exclude)") :] for p in _excludes(root, not_code)]
    code_tree = _tree_without(root, tree, study_files) if study_files else tree
    return GitState(root, commit, tree, dirty, dirty_paths, code_tree)
