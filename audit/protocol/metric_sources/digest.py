"""Digests of what a trial's metrics were read from: files by sha256, and one over all."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_sha256(entry: Mapping[str, Any], histories_sha256: str | None) -> str:
    """One digest over the record entry (kind, files or run id) and, for a run, its histories."""
    # RFC 8785 bytes, as audit.tracking.runspec.canonical_json makes them; rfc8785 itself,
    # not runspec: the runner computes this after every trial and needs nothing else there.
    import rfc8785

    return hashlib.sha256(rfc8785.dumps([dict(entry), histories_sha256])).hexdigest()
