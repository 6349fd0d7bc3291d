"""The trial cache: finished trials keyed by fingerprint, shared across out dirs.

An entry holds what a successful trial produced (metrics, duration) and where it
ran; a later trial with the same fingerprint reuses it and says so (`cached_from`).
Failed trials are never cached: a failure deserves a fresh attempt.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class TrialCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, fingerprint: str) -> Path:
        return self.root / fingerprint[:2] / f"{fingerprint}.json"

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        try:
            entry = json.loads(self._path(fingerprint).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
            return None
        return entry

    def put(self, fingerprint: str, entry: dict[str, Any]) -> None:
        path = self._path(fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({**entry, "fingerprint": fingerprint}, sort_keys=True, allow_nan=False)
        # Write then rename, so a reader never sees half an entry.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
