"""The trust root: allowed_signers, policy and revoked keys, read from a protected git ref.

Read with `git cat-file` from a commit (never from the work tree, which the pull
request controls), through an argv list with a validated ref name. A plain
directory can stand in for local use, but it is recorded as not protected.

A repository may hold several projects, each with its own `.mlaudit/` (this
repository's examples/fraud is one). The project of an EDD is the nearest
folder at or above it that holds `.mlaudit/policy.yaml`, looked up in the
trust ref, so a pull request can no more move its EDD under another project's
trust files than it could by moving the EDD itself.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from audit.edd.safe_yaml import MAX_BYTES
from audit.errors import TrustError, UsageError

ALLOWED_SIGNERS = ".mlaudit/allowed_signers"
POLICY = ".mlaudit/policy.yaml"
REVOKED_KEYS = ".mlaudit/revoked_keys"
REQUIRED = (ALLOWED_SIGNERS, POLICY)

# Branch names, remote refs, tags, full or short SHAs, HEAD~1 / main^: no options,
# no ranges, no reflog or pathspec syntax.
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9_./~^-]{1,255}$")

UNPROTECTED_WARNING = (
    "WARNING: trust files read from a plain directory ({path}), NOT from a protected git ref; "
    "anyone who can edit that directory decides who may approve. Use --trust-ref in CI."
)


@dataclass(frozen=True)
class TrustRoot:
    """Where the trust files came from and their exact bytes (kept for the audit bundle)."""

    files: dict[str, bytes]  # by logical name (`.mlaudit/policy.yaml`), wherever the project is
    protected: bool
    ref: str | None = None
    commit: str | None = None
    directory: str | None = None
    warnings: list[str] = field(default_factory=list)
    project: str = ""  # the project's folder within the repository ("" at the top level)

    @property
    def source(self) -> str:
        return f"{self.ref}@{self.commit}" if self.ref else f"dir:{self.directory}"

    def label(self, name: str) -> str:
        """How to name one trust file in messages, e.g. `origin/main:.mlaudit/policy.yaml`."""
        if self.ref:
            return f"{self.ref}:{_in_project(self.project, name)}"
        return str(Path(self.directory or ".") / Path(name).name)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, check=False, env=environment
        )
    except FileNotFoundError:
        raise TrustError("git not found on PATH") from None


def validate_ref(ref: str) -> str:
    if not _REF.match(ref):
        raise UsageError(f"--trust-ref {ref!r} is not an acceptable git ref name")
    return ref


def _in_project(project: str, name: str) -> str:
    return f"{project}/{name}" if project else name


def _toplevel(directory: Path) -> Path | None:
    found = _git(directory, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        return None
    return Path(found.stdout.decode("utf-8", "surrogateescape").strip()).resolve()


def locate_project(start: Path, ref: str | None = None) -> Path:
    """The project folder for an EDD in (or a --repo of) `start`.

    The nearest folder from `start` up to the git top level holding
    `.mlaudit/policy.yaml`: in the commit `ref` names when given (the work tree
    belongs to the pull request), on disk otherwise. The top level when none
    does (the trust files' absence is then reported by whoever reads them);
    `start` itself outside git.
    """
    start = start.resolve()
    top = _toplevel(start) if start.is_dir() else None
    if top is None:
        return start
    try:
        relative = start.relative_to(top)
    except ValueError:
        return start
    if ref is not None:
        validate_ref(ref)
    for folder in (relative, *relative.parents):
        where = folder.as_posix()
        name = _in_project("" if where == "." else where, POLICY)
        if ref is None:
            if (top / name).is_file():
                return top / folder
        elif _git(top, "cat-file", "-e", f"{ref}^{{commit}}:{name}").returncode == 0:
            return top / folder
    return top


def trust_from_git(repo: Path, ref: str) -> TrustRoot:
    """Resolve `ref` to a commit and read the trust files of the project folder `repo`.

    `repo` is a folder in the work tree (the git top level or a project below it);
    its `.mlaudit/` is read from the commit at the same path.
    """
    validate_ref(ref)
    resolved = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if resolved.returncode != 0:
        detail = resolved.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f" ({detail[-1]})" if detail else ""
        raise TrustError(f"trust ref {ref!r} does not name a commit in {repo}{why}")
    commit = resolved.stdout.decode().strip()
    top = _toplevel(repo)
    project = ""
    if top is not None:
        try:
            where = repo.resolve().relative_to(top).as_posix()
        except ValueError:
            where = "."
        project = "" if where == "." else where
    folder = _in_project(project, ".mlaudit/")
    listing = _git(repo, "ls-tree", "-z", "--full-tree", "--name-only", commit, "--", folder)
    present = {name for name in listing.stdout.decode("utf-8", "replace").split("\0") if name}
    files: dict[str, bytes] = {}
    for name in (*REQUIRED, REVOKED_KEYS):
        path = _in_project(project, name)
        if path not in present:
            if name in REQUIRED:
                raise TrustError(f"{ref} ({commit[:12]}) has no {path}")
            continue
        blob = _git(repo, "cat-file", "blob", f"{commit}:{path}")
        if blob.returncode != 0:
            raise TrustError(f"cannot read {path} from {ref} ({commit[:12]})")
        files[name] = _limited(blob.stdout, f"{ref}:{path}")
    return TrustRoot(files=files, protected=True, ref=ref, commit=commit, project=project)


def trust_from_dir(directory: Path) -> TrustRoot:
    """Read the trust files from DIR (or DIR/.mlaudit); recorded as unprotected."""
    base = directory / ".mlaudit" if (directory / ".mlaudit").is_dir() else directory
    files: dict[str, bytes] = {}
    for name in (*REQUIRED, REVOKED_KEYS):
        path = base / Path(name).name
        if not path.is_file():
            if name in REQUIRED:
                raise TrustError(f"trust directory {base} has no {Path(name).name}")
            continue
        files[name] = _limited(path.read_bytes(), str(path))
    warning = UNPROTECTED_WARNING.format(path=base)
    return TrustRoot(files=files, protected=False, directory=str(base), warnings=[warning])


def _limited(data: bytes, label: str) -> bytes:
    if len(data) > MAX_BYTES:
        raise TrustError(f"{label} is larger than {MAX_BYTES} bytes")
    return data
