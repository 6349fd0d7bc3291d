"""Re-hash the stored artifact files of sealed runs against their sealed artifact manifest.

A sealed record covers the tag `mlaudit.artifacts.sha256`, the digest of the
manifest (`mlaudit/artifacts.json`: path -> sha256) the client uploaded before
ending the run. The seal therefore proves the manifest, and the manifest proves
every file, but only if someone reads the files again: this module does, through
the tracking server's artifact API, and names every file that no longer matches
with its run and path. It only adds findings; it never changes what it reads.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from audit.tracking.ledger import Ledger
from audit.tracking.ledger_verify import LedgerVerification, Tamper
from audit.tracking.record import ARTIFACT_MANIFEST_PATH

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def check_artifacts(client: Any, ledger: Ledger, result: LedgerVerification) -> None:
    """Add a finding to `result` for every sealed artifact that is missing or changed."""
    files = runs = 0
    with tempfile.TemporaryDirectory(prefix="mlaudit-artifacts-") as scratch:
        for leaf in ledger.leaves:
            sealed = _sealed_manifest_digest(ledger.records.get(leaf.run_id))
            if sealed is None:
                continue
            runs += 1
            files += _check_run(client, leaf.run_id, sealed, Path(scratch) / leaf.run_id, result)
    result.notes.append(f"artifacts: re-hashed {files} files of {runs} sealed runs")


def _sealed_manifest_digest(record: bytes | None) -> str | None:
    if record is None:
        return None
    value = json.loads(record).get("artifacts_sha256")
    return value if isinstance(value, str) else None


def _check_run(
    client: Any, run_id: str, sealed: str, scratch: Path, result: LedgerVerification
) -> int:
    manifest_file = _download(client, run_id, ARTIFACT_MANIFEST_PATH, scratch)
    if manifest_file is None:
        _add(result, "missing-artifact", run_id, ARTIFACT_MANIFEST_PATH, "is missing")
        return 0
    if manifest_file.stat().st_size > MAX_MANIFEST_BYTES or _sha256(manifest_file) != sealed:
        _add(result, "changed-artifact", run_id, ARTIFACT_MANIFEST_PATH, _CHANGED)
        return 1
    manifest = _parse_manifest(manifest_file.read_bytes())
    if manifest is None:
        _add(result, "changed-artifact", run_id, ARTIFACT_MANIFEST_PATH, "is not a manifest")
        return 1
    for path, expected in sorted(manifest.items()):
        stored = _download(client, run_id, path, scratch)
        if stored is None:
            _add(result, "missing-artifact", run_id, path, "is missing")
        elif _sha256(stored) != expected:
            _add(result, "changed-artifact", run_id, path, _CHANGED)
    return 1 + len(manifest)


_CHANGED = "was overwritten: its sha256 no longer matches the sealed artifact manifest"


def _add(result: LedgerVerification, kind: str, run_id: str, path: str, what: str) -> None:
    result.findings.append(
        Tamper(
            kind=kind,
            message=f"run {run_id}: artifact {path} {what}",
            run_id=run_id,
            field=f"artifacts/{path}",
        )
    )


def _parse_manifest(data: bytes) -> dict[str, str] | None:
    """The manifest's path -> sha256 map, or None if it is anything else."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, Mapping):
        return None
    manifest: dict[str, str] = {}
    for path, digest in value.items():
        if not (_clean_path(path) and isinstance(digest, str) and _is_sha256(digest)):
            return None
        manifest[path] = digest
    return manifest


def _clean_path(path: object) -> bool:
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in PurePosixPath(path).parts)


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def _download(client: Any, run_id: str, path: str, scratch: Path) -> Path | None:
    from mlflow.exceptions import MlflowException

    scratch.mkdir(parents=True, exist_ok=True)
    try:
        local = client.download_artifacts(run_id, path, str(scratch))
    except (MlflowException, OSError):
        return None
    found = Path(local)
    return found if found.is_file() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
