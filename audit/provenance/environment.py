"""The software environment a run used: Python, platform, distributions, lock file, image.

Recorded as data so an auditor can see what ran; the lock-file hash (or, without
one, the hash of the installed distributions) is what makes trials comparable.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.provenance._hashing import sha256_json

# In the order a project is most likely to treat as its real lock.
_LOCK_NAMES = (
    "uv.lock",
    "poetry.lock",
    "pdm.lock",
    "Pipfile.lock",
    "conda-lock.yml",
    "environment.yml",
    "environment.yaml",
    "requirements.lock",
)


@dataclass(frozen=True)
class Environment:
    python: str
    platform: str
    distributions: tuple[str, ...]
    distributions_sha256: str
    lock_file: str | None
    lock_sha256: str | None
    image_digest: str | None

    @property
    def key(self) -> dict[str, Any]:
        """What decides whether two runs used the same software (not the machine's kernel)."""
        return {
            "python": self.python,
            "lock": self.lock_sha256 or self.distributions_sha256,
            "image": self.image_digest,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "platform": self.platform,
            "distributions": list(self.distributions),
            "distributions_sha256": self.distributions_sha256,
            "lock_file": self.lock_file,
            "lock_sha256": self.lock_sha256,
            "image_digest": self.image_digest,
        }


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(paths: Sequence[str] | None = None) -> tuple[str, ...]:
    """`name==version` for every installed distribution, like `pip freeze`, sorted.

    Names and versions come from the `.dist-info` / `.egg-info` directory names,
    which is what makes this cheap; only odd entries fall back to reading metadata.
    """
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=list(paths) if paths else sys.path):
        located = _from_directory_name(dist)
        if located is None:
            name, version = dist.metadata["Name"], dist.version
        else:
            name, version = located
        if name and _normalise(name) not in seen:
            seen[_normalise(name)] = f"{name}=={version}"
    return tuple(seen[key] for key in sorted(seen))


def _from_directory_name(dist: importlib.metadata.Distribution) -> tuple[str, str] | None:
    folder = getattr(dist, "_path", None)
    if not isinstance(folder, Path) or folder.suffix not in (".dist-info", ".egg-info"):
        return None
    parts = folder.stem.split("-")
    if len(parts) < 2 or not parts[1][:1].isdigit():
        return None
    return parts[0], parts[1]


def find_lock_files(root: Path) -> list[Path]:
    for name in _LOCK_NAMES:
        if (root / name).is_file():
            return [root / name]
    return sorted(p for p in root.glob("requirements*.txt") if p.is_file())


def _hash_files(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def describe_environment(root: Path, *, image_digest: str | None = None) -> Environment:
    distributions = installed_distributions()
    locks = find_lock_files(root)
    return Environment(
        python=platform.python_version(),
        platform=f"{platform.system()}-{platform.release()}-{platform.machine()}",
        distributions=distributions,
        distributions_sha256=sha256_json(list(distributions)),
        lock_file=",".join(p.relative_to(root).as_posix() for p in locks) or None,
        lock_sha256=_hash_files(root, locks) if locks else None,
        image_digest=image_digest or None,
    )
