"""Data kept in Git LFS: the pointer committed for each declared path, and the file on disk.

For every file at or under a declared path, the pointer blob at HEAD gives the
object's oid (sha256) and size; the real `git lfs pointer --check --strict` says
whether that pointer is canonical; the checked-out file is hashed and must be the
object the pointer names. A missing smudge (the pointer text left on disk) or an
edited file is a mismatch, which refuses the run as a dirty `dvc status` does.
Never reads the LFS store or a remote: only the commit and the work tree.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import ProvenanceError
from audit.provenance._hashing import sha256_json

_POINTER = re.compile(
    rb"\Aversion https://git-lfs\.github\.com/spec/v1\n(?:.*\n)*?oid sha256:([0-9a-f]{64})\n"
    rb"(?:.*\n)*?size ([0-9]+)\n",
)
_MAX_POINTER = 1024  # git-lfs itself never treats a larger blob as a pointer
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LfsObject:
    """One file as Git LFS pins it at the commit, and whether the work tree holds it."""

    path: str  # relative to the project root, posix
    oid: str  # sha256 hex of the object
    size: int
    canonical: bool  # the pointer is byte for byte what git-lfs would write
    worktree_sha256: str | None  # None: the file is missing from the work tree

    @property
    def matches(self) -> bool:
        return self.worktree_sha256 == self.oid

    def problem(self) -> str | None:
        if self.worktree_sha256 is None:
            return f"{self.path}: missing from the work tree"
        if self.matches:
            return None
        return f"{self.path}: the file on disk (sha256 {self.worktree_sha256[:12]}) " + (
            "is still the LFS pointer: the object was never fetched (run `git lfs pull`)"
            if self.worktree_sha256 == _pointer_digest(self)
            else f"is not the LFS object {self.oid[:12]} committed for it"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "oid": f"sha256:{self.oid}",
            "size": self.size,
            "canonical": self.canonical,
            "worktree_sha256": self.worktree_sha256,
            "matches": self.matches,
        }


@dataclass(frozen=True)
class LfsPin:
    """A declared data path and every LFS object at or under it."""

    path: str
    commit: str
    objects: tuple[LfsObject, ...]

    @property
    def digest(self) -> str:
        """sha256 over (path, oid, size) of every object: the path's data hash."""
        return sha256_json([[o.path, o.oid, o.size] for o in self.objects])

    def problems(self) -> list[str]:
        return [p for p in (o.problem() for o in self.objects) if p is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "commit": self.commit,
            "digest": f"sha256:{self.digest}",
            "objects": [o.to_dict() for o in self.objects],
        }


def _pointer_digest(obj: LfsObject) -> str:
    """sha256 of the canonical pointer text: what a missing smudge leaves on disk."""
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{obj.oid}\nsize {obj.size}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def _run(root: Path, args: Sequence[str], stdin: bytes | None = None) -> tuple[int, bytes, str]:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], input=stdin, capture_output=True, check=False
        )
    except OSError as error:
        raise ProvenanceError(f"cannot run git: {error.strerror}") from None
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace").strip()


def _git(root: Path, *args: str) -> bytes:
    code, out, err = _run(root, args)
    if code != 0:
        raise ProvenanceError(f"git {args[0]} in {root}: {err or 'failed'}")
    return out


def _blobs(root: Path, commit: str, path: str) -> list[tuple[str, str]]:
    """(path relative to root, blob id) of every file at or under `path` at the commit."""
    listing = _git(root, "ls-tree", "-r", "-z", "--full-name", commit, "--", path)
    prefix = _git(root, "rev-parse", "--show-prefix").decode().strip()
    blobs = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        kind, blob = meta.split()[1:3]
        if kind == b"blob":
            blobs.append((name.decode().removeprefix(prefix), blob.decode()))
    return blobs


def _pointer_check(root: Path, pointer: bytes) -> int:
    """git-lfs's own strict check: 0 canonical, 2 a pointer but not canonical, 1 no pointer."""
    code, _, err = _run(root, ["lfs", "pointer", "--check", "--strict", "--stdin"], pointer)
    if code not in (0, 1, 2):
        raise ProvenanceError(f"git lfs pointer --check in {root}: {err or f'exit {code}'}")
    return code


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _lfs_object(root: Path, path: str, blob: str) -> LfsObject:
    pointer = _git(root, "cat-file", "blob", blob)
    check = _pointer_check(root, pointer) if len(pointer) <= _MAX_POINTER else 1
    match = _POINTER.match(pointer) if check != 1 else None
    if match is None:
        raise ProvenanceError(
            f"data path {path!r} is not stored in Git LFS at HEAD (the committed file is not "
            "an LFS pointer); track it with `git lfs track` and commit it again"
        )
    return LfsObject(
        path=path,
        oid=match.group(1).decode(),
        size=int(match.group(2)),
        canonical=check == 0,
        worktree_sha256=_file_sha256(root / path),
    )


def lfs_pins(root: Path, data_paths: Sequence[str]) -> dict[str, LfsPin]:
    """For every declared path, the LFS objects the commit pins (refuses a path with none)."""
    _require_git_lfs(root)
    commit = _git(root, "rev-parse", "HEAD").decode().strip()
    pins = {}
    for path in data_paths:
        blobs = _blobs(root, commit, path)
        if not blobs:
            raise ProvenanceError(f"data path {path!r} is not committed at HEAD ({commit[:12]})")
        objects = tuple(_lfs_object(root, name, blob) for name, blob in sorted(blobs))
        pins[path] = LfsPin(path, commit, objects)
    return pins


def _require_git_lfs(root: Path) -> None:
    code, _, _ = _run(root, ["lfs", "version"])
    if code != 0:
        raise ProvenanceError(
            "the EDD declares Git LFS data but git-lfs is not installed",
            hint="install git-lfs (Debian: apt-get install git-lfs)",
        )


def lfs_problems(pins: dict[str, LfsPin]) -> list[str]:
    return [problem for pin in pins.values() for problem in pin.problems()]
