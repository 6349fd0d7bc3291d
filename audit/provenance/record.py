"""Collect the provenance of a run and derive the fingerprints that key the trial cache.

Refuses (ProvenanceError) what cannot be recorded honestly: a dirty tree without
--allow-dirty, data DVC does not track, data that no longer matches dvc.lock, and
Git LFS files that are not the objects their pointers name (audit.provenance.pins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import ProvenanceError
from audit.provenance._hashing import sha256_json
from audit.provenance.dvc import data_hashes, dvc_status, require_clean
from audit.provenance.environment import Environment, describe_environment
from audit.provenance.git import GitState, git_state
from audit.provenance.lakefs import ClientFactory
from audit.provenance.pins import DataPins, collect_pins


@dataclass(frozen=True)
class Provenance:
    git: GitState
    allow_dirty: bool
    data: dict[str, str]
    dvc_status_clean: bool | None
    environment: Environment
    pins: DataPins = field(default_factory=DataPins)

    @property
    def fingerprint(self) -> str:
        """sha256 over code, data hashes and environment: equal across CI shards.

        The code is the git tree without the study's own files (EDD, approvals).
        """
        return sha256_json(
            {"code": self.git.code_tree, "data": self.data, "environment": self.environment.key}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "git": {
                "commit": self.git.commit,
                "tree": self.git.tree,
                "code_tree": self.git.code_tree,
                "dirty": self.git.dirty,
                "allow_dirty": self.allow_dirty,
            },
            "data": dict(sorted(self.data.items())),
            "dvc_status_clean": self.dvc_status_clean,
            "environment": self.environment.to_dict(),
            "fingerprint": self.fingerprint,
            # Only studies that declare Git LFS or lakeFS data have it.
            **({"data_pins": self.pins.to_dict()} if self.pins.to_dict() else {}),
        }


def collect_provenance(
    root: Path,
    data_paths: Sequence[str],
    *,
    allow_dirty: bool = False,
    image_digest: str | None = None,
    exclude: Sequence[Path] = (),
    not_code: Sequence[Path] = (),
    check_dvc_status: bool = True,
    dvc_pending: bool = False,
    lfs_paths: Sequence[str] = (),
    lakefs_uris: Sequence[str] = (),
    lakefs_client: ClientFactory | None = None,
    dvc_check: Callable[[], list[str]] | None = None,
) -> Provenance:
    """Describe code, data and environment of the project at `root`, or refuse.

    The code is the whole git repository holding `root` (a project may import
    from beside it); data (dvc.lock, .dvc files) and the environment's lock file
    are the project's own. `dvc_check` answers `dvc status` when it was started earlier
    (audit.provenance.dvc.start_dvc_status); it is waited for here, before any trial.
    `dvc_pending`: the caller waits for that answer itself (PendingStatus.clean) and
    keeps the run from publishing anything before it passed; the record says clean,
    as it is whenever a run's results exist.
    """
    git = git_state(root, exclude=exclude, not_code=not_code)
    if git.dirty and not allow_dirty:
        shown = ", ".join(git.dirty_paths[:5]) or "uncommitted changes"
        more = f" and {len(git.dirty_paths) - 5} more" if len(git.dirty_paths) > 5 else ""
        raise ProvenanceError(
            f"{git.root}: the work tree is dirty ({shown}{more})",
            hint="commit the changes, or pass --allow-dirty to run anyway and record it",
        )
    hashes = data_hashes(root, data_paths)
    clean: bool | None = None
    if check_dvc_status and data_paths:
        if not dvc_pending:
            require_clean(dvc_check() if dvc_check is not None else dvc_status(root, data_paths))
        clean = True
    pins = collect_pins(root, lfs_paths, lakefs_uris, lakefs_client)
    hashes |= pins.hashes()
    environment = describe_environment(root, image_digest=image_digest)
    return Provenance(git, allow_dirty, hashes, clean, environment, pins)


def trial_fingerprint(
    provenance_fingerprint: str,
    *,
    config_sha256: str,
    seed: int,
    command: Sequence[str],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """What decides a trial's result: code+data+env, resolved config, seed and command."""
    return sha256_json(
        {
            "provenance": provenance_fingerprint,
            "config": config_sha256,
            "seed": seed,
            "command": list(command),
            "extra": dict(extra or {}),
        }
    )
