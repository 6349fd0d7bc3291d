"""The fork-safe hand-over: an unprivileged job writes the report, a privileged job posts it.

The privileged side (`--from-artifact`) treats every byte of the artifact as
hostile: bounded sizes, strict types and ranges, a fixed alphabet for the key,
and later an API check that the PR really targets this repository and has
this head commit (see GitHubPublisher.verify_pull).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import InputError, Location, ValidationFailed

SCHEMA = "mlaudit/publish-artifact/v1"
REPORT_NAME = "report.md"
META_NAME = "publish.json"
MAX_REPORT_BYTES = 4 * 1024 * 1024
MAX_META_BYTES = 16 * 1024
_SHA = re.compile(r"[0-9a-f]{40}")
_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class Handover:
    report: str
    pr_number: int
    head_sha: str
    key: str | None = None


def write_artifact(directory: Path, handover: Handover) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    report, meta = directory / REPORT_NAME, directory / META_NAME
    report.write_text(handover.report, encoding="utf-8")
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "pr_number": handover.pr_number,
        "head_sha": handover.head_sha,
    }
    if handover.key:
        data["key"] = handover.key
    meta.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [report, meta]


def _read_bounded(path: Path, limit: int) -> str:
    if path.is_symlink() or not path.is_file():
        raise InputError("missing, or not a regular file", location=Location(str(path)))
    if path.stat().st_size > limit:
        raise InputError(f"larger than {limit:,} bytes; refused", location=Location(str(path)))
    try:
        return path.read_bytes()[:limit].decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", location=Location(str(path))) from None


def _check_meta(data: Any, file: str) -> tuple[int, str, str | None]:
    if not isinstance(data, dict):
        raise ValidationFailed(file, [("", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    if data.get("schema") != SCHEMA:
        problems.append(("/schema", f"must be {SCHEMA!r}"))
    number = data.get("pr_number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**31:
        problems.append(("/pr_number", "must be an integer between 1 and 2^31-1"))
    sha = data.get("head_sha")
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        problems.append(("/head_sha", "must be 40 lowercase hex digits"))
    key = data.get("key")
    if key is not None and (not isinstance(key, str) or not _KEY.fullmatch(key)):
        problems.append(("/key", "must match [A-Za-z0-9._-]{1,64}"))
    unknown = sorted(set(data) - {"schema", "pr_number", "head_sha", "key"})
    if unknown:
        problems.append(("", f"unexpected fields: {', '.join(map(str, unknown))[:200]}"))
    if problems:
        raise ValidationFailed(file, problems)
    assert isinstance(number, int)
    assert isinstance(sha, str)
    return number, sha, key if isinstance(key, str) else None


def read_artifact(directory: Path) -> Handover:
    """The artifact's report and claims, shape-checked; the API check comes later."""
    meta_path = directory / META_NAME
    meta_text = _read_bounded(meta_path, MAX_META_BYTES)
    try:
        data = json.loads(meta_text)
    except ValueError:
        raise InputError("not JSON", location=Location(str(meta_path))) from None
    number, sha, key = _check_meta(data, str(meta_path))
    report = _read_bounded(directory / REPORT_NAME, MAX_REPORT_BYTES)
    return Handover(report=report, pr_number=number, head_sha=sha, key=key)
