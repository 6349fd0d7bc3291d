"""The local spool: trials that could not reach the tracking server, kept for `track flush`.

One JSON-lines file per protocol execution (named by its execution key) plus a
content-addressed folder of the trial files to upload, so a replay needs nothing but
the spool. Lines are appended under an exclusive file lock and each line is one
complete JSON document; a torn last line (a crash mid-write) is ignored on replay.
Replaying (audit.tracking.replay) goes through the same exactly-once logger, so
flushing twice is harmless; this module never imports the logger.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import TrackingError
from audit.tracking.runspec import execution_key

SPOOL_FORMAT = "mlaudit.spool/1"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # One lock for the whole spool folder: appends and replays are rare and short.
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def file_for(self, header: Mapping[str, Any]) -> Path:
        return self.directory / f"{execution_key(header)}.jsonl"

    def _blobs(self) -> Path:
        return self.directory / "files"

    def _store_files(self, files: Iterable[tuple[str, Path]]) -> list[list[str]]:
        stored = []
        for name, path in files:
            data = Path(path).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            blob = self._blobs() / digest
            if not blob.exists():
                blob.parent.mkdir(parents=True, exist_ok=True)
                partial = blob.with_suffix(".partial")
                partial.write_bytes(data)
                partial.replace(blob)
            stored.append([name, digest])
        return stored

    def _append(
        self, header: Mapping[str, Any], uri: str, experiment: str, entry: dict[str, Any]
    ) -> None:
        target = self.file_for(header)
        with _locked(target):
            lines = []
            if not target.exists():
                lines.append(
                    {
                        "kind": "header",
                        "format": SPOOL_FORMAT,
                        "tracking_uri": uri,
                        "experiment": experiment,
                        "header": dict(header),
                    }
                )
            lines.append(entry)
            with target.open("a", encoding="utf-8") as handle:
                for line in lines:
                    handle.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
                handle.flush()

    def append_trial(
        self,
        uri: str,
        experiment: str,
        header: Mapping[str, Any],
        trial: Mapping[str, Any],
        files: Iterable[tuple[str, Path]],
    ) -> None:
        entry = {"kind": "trial", "trial": dict(trial), "files": self._store_files(files)}
        self._append(header, uri, experiment, entry)

    def append_close(
        self,
        uri: str,
        experiment: str,
        header: Mapping[str, Any],
        results: Mapping[str, Any] | None,
        analysis: Mapping[str, Any] | None,
        extra_files: Mapping[str, Path] | None,
    ) -> None:
        entry = {
            "kind": "close",
            "results": dict(results) if results is not None else None,
            "analysis": dict(analysis) if analysis is not None else None,
            "files": self._store_files(sorted((extra_files or {}).items())),
        }
        self._append(header, uri, experiment, entry)

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl")) if self.directory.is_dir() else []

    def blob(self, digest: str) -> Path:
        return self._blobs() / digest


@dataclass
class SpooledExecution:
    path: Path
    experiment: str
    header: dict[str, Any]
    trials: list[tuple[dict[str, Any], list[list[str]]]] = field(default_factory=list)
    close: dict[str, Any] | None = None


def read_spool_file(path: Path) -> SpooledExecution:
    execution: SpooledExecution | None = None
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash mid-append carries nothing complete
            kind = entry.get("kind")
            if kind == "header" and execution is None:
                execution = SpooledExecution(path, str(entry["experiment"]), dict(entry["header"]))
            elif execution is None:
                raise TrackingError(f"{path}:{number}: spool file does not start with a header")
            elif kind == "trial":
                execution.trials.append((dict(entry["trial"]), list(entry.get("files") or [])))
            elif kind == "close":
                execution.close = entry
    if execution is None:
        raise TrackingError(f"{path}: empty spool file")
    return execution


def locked(path: Path) -> contextlib.AbstractContextManager[None]:
    """The spool folder's lock (for the replay in audit.tracking.replay)."""
    return _locked(path)
