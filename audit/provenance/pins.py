"""Data pinned beyond DVC (Git LFS, lakeFS): collected once, recorded, and checked again.

`collect_pins` refuses what cannot be recorded honestly (an LFS file on disk that is
not the object its pointer names); `changed_pins` tells whether the data moved since
it was recorded, so a run whose lakeFS branch moved or whose LFS file changed while
the trials ran is refused instead of sealed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import ProvenanceError
from audit.provenance.lakefs import ClientFactory, LakeFSPin, lakefs_pins, moved
from audit.provenance.lfs import LfsPin, lfs_pins, lfs_problems


@dataclass(frozen=True)
class DataPins:
    lfs: dict[str, LfsPin] = field(default_factory=dict)
    lakefs: dict[str, LakeFSPin] = field(default_factory=dict)

    def hashes(self) -> dict[str, str]:
        """Declared path or URI -> the digest that enters the provenance fingerprint."""
        found = {path: f"sha256:{pin.digest}" for path, pin in self.lfs.items()}
        found |= {uri: f"sha256:{pin.manifest_digest}" for uri, pin in self.lakefs.items()}
        return found

    def to_dict(self) -> dict[str, Any]:
        pins: dict[str, Any] = {}
        if self.lfs:
            pins["git_lfs"] = [self.lfs[p].to_dict() for p in sorted(self.lfs)]
        if self.lakefs:
            pins["lakefs"] = [self.lakefs[u].to_dict() for u in sorted(self.lakefs)]
        return pins


def collect_pins(
    root: Path,
    lfs_paths: Sequence[str] = (),
    lakefs_uris: Sequence[str] = (),
    lakefs_client: ClientFactory | None = None,
) -> DataPins:
    lfs = lfs_pins(root, lfs_paths) if lfs_paths else {}
    problems = lfs_problems(lfs)
    if problems:
        raise ProvenanceError(
            f"data does not match its Git LFS pointer: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint="run `git lfs pull`, or commit the changed file through Git LFS",
        )
    return DataPins(lfs, lakefs_pins(lakefs_uris, lakefs_client))


def changed_pins(
    recorded: Mapping[str, Any], root: Path, lakefs_client: ClientFactory | None = None
) -> list[str]:
    """How the pinned data differs now from `recorded` (a Provenance.to_dict()`s data_pins)."""
    problems: list[str] = []
    lfs_recorded = {p["path"]: p for p in recorded.get("git_lfs") or []}
    if lfs_recorded:
        now = lfs_pins(root, sorted(lfs_recorded))
        for path, pin in sorted(now.items()):
            if pin.to_dict()["objects"] != lfs_recorded[path]["objects"]:
                problems.append(f"{path}: the Git LFS data changed during the run")
            problems += pin.problems()
    lakefs_recorded = {p["uri"]: p for p in recorded.get("lakefs") or []}
    if lakefs_recorded:
        now_lakefs = lakefs_pins(sorted(lakefs_recorded), lakefs_client)
        for uri, current in sorted(now_lakefs.items()):
            was = lakefs_recorded[uri]
            then = LakeFSPin(
                uri,
                str(was["ref_kind"]),
                str(was["commit_id"]),
                tuple((o["path"], o["checksum"], int(o["size"])) for o in was["objects"]),
            )
            problem = moved(then, current)
            if problem:
                problems.append(problem)
    return problems
