"""The EDD's data section sorted by what pins each entry: DVC, Git LFS or lakeFS.

Every entry has one key in provenance `data` (its path, or its lakefs URI), so the
gate can ask of each signed entry whether a hash was recorded for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeclaredData:
    dvc: tuple[str, ...] = ()
    git_lfs: tuple[str, ...] = ()
    lakefs: tuple[str, ...] = ()


def data_key(entry: Mapping[str, Any]) -> str:
    """The name an EDD data entry is recorded under: its lakefs URI or its path."""
    return str(entry.get("lakefs") or entry["path"])


def declared_data(entries: Sequence[Mapping[str, Any]]) -> DeclaredData:
    dvc, lfs, lakefs = [], [], []
    for entry in entries:
        if entry.get("lakefs"):
            lakefs.append(str(entry["lakefs"]))
        elif entry.get("tracked_by") == "git-lfs":
            lfs.append(str(entry["path"]))
        else:
            dvc.append(str(entry["path"]))
    return DeclaredData(tuple(dvc), tuple(lfs), tuple(lakefs))
