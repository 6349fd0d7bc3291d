"""`track flush`: replay every spooled execution through the exactly-once logger.

Separate from the spool itself so the spool (which the logger writes to) never
imports the logger: tracking/client -> tracking/spool, and this module -> both.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.tracking.client import ProtocolLogger
from audit.tracking.spool import Spool, locked, read_spool_file


@dataclass
class FlushSummary:
    spool_dir: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # spool file -> log summary
    remaining: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"spool_dir": self.spool_dir, "files": self.files, "remaining": self.remaining}


def flush(uri: str, spool_dir: Path, *, policy: Any = None) -> FlushSummary:
    """Replay every spooled execution; a file is removed only once all of it is logged."""
    spool = Spool(spool_dir)
    summary = FlushSummary(str(spool_dir))
    for path in spool.pending():
        with locked(path), contextlib.ExitStack() as stack:
            execution = read_spool_file(path)
            staging = Path(stack.enter_context(_staging_dir(spool_dir)))
            logger = ProtocolLogger(
                uri, execution.header, None, experiment=execution.experiment, policy=policy
            )
            for index, (trial, files) in enumerate(execution.trials):
                logger.log_trial(trial, _materialise(spool, files, staging / str(index)))
            if execution.close is not None:
                close = execution.close
                extra = {name: spool.blob(digest) for name, digest in close.get("files") or []}
                logger.close(close.get("results"), close.get("analysis"), extra)
                path.unlink()
            else:
                summary.remaining.append(str(path))  # the logger may still be appending
            summary.files[str(path)] = logger.summary.to_json()
    if not spool.pending() and spool._blobs().is_dir():
        shutil.rmtree(spool._blobs())
    return summary


@contextlib.contextmanager
def _staging_dir(spool_dir: Path) -> Iterator[str]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlaudit-flush-", dir=spool_dir) as tmp:
        yield tmp


def _materialise(spool: Spool, files: list[list[str]], into: Path) -> Path | None:
    """Rebuild a trial directory from the blobs, so the replay uploads the same files."""
    if not files:
        return None
    for name, digest in files:
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spool.blob(digest), target)
    return into
