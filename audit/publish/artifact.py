"""The fork-safe hand-over: an unprivileged job stages the study's documents, a privileged job
judges and posts.

The artifact carries data, never a decision and never Markdown to post: the
signed EDD and its approvals, results.json, analysis.json, the ledger
checkpoint, and the PR number and head SHA the run was for. The privileged
side (`--from-artifact`) treats every byte as hostile: only the names below are
read, each a regular file (no symlinks) within a size bound, copied into a
private folder before anything reads them; the PR is checked against the API
later (GitHubPublisher.verify_pull), and the gate is recomputed from the copies
with the default branch's trust files (audit.publish.judge).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import InputError, Location, ValidationFailed

SCHEMA = "mlaudit/publish-artifact/v2"
META_NAME = "publish.json"
EDD_NAME = "edd.yaml"
APPROVALS_DIR = "approvals"
RESULTS_NAME = "results.json"
ANALYSIS_NAME = "analysis.json"
CHECKPOINT_NAME = "checkpoint.json"
MAX_META_BYTES = 16 * 1024
MAX_APPROVALS = 64
LIMITS = {
    EDD_NAME: 1024 * 1024,
    RESULTS_NAME: 64 * 1024 * 1024,
    ANALYSIS_NAME: 64 * 1024 * 1024,
    CHECKPOINT_NAME: 64 * 1024,
}
MAX_SIGNATURE_BYTES = 16 * 1024
_SHA = re.compile(r"[0-9a-f]{40}")
_SIGNATURE_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}\.sig")


@dataclass(frozen=True)
class Handover:
    """Which PR and commit the unprivileged run was for (checked against the API later)."""

    pr_number: int
    head_sha: str


@dataclass(frozen=True)
class StudyDocuments:
    """A study's documents on disk: the EDD (approvals beside it), results, analysis."""

    edd: Path
    results: Path
    analysis: Path
    checkpoint: Path | None = None


def _approvals(edd: Path) -> list[Path]:
    folder = edd.parent / APPROVALS_DIR
    return sorted(p for p in folder.iterdir() if p.suffix == ".sig") if folder.is_dir() else []


def write_artifact(directory: Path, handover: Handover, study: StudyDocuments) -> list[Path]:
    """Stage the documents (copied byte for byte) and publish.json under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source, name in (
        (study.edd, EDD_NAME),
        (study.results, RESULTS_NAME),
        (study.analysis, ANALYSIS_NAME),
        (study.checkpoint, CHECKPOINT_NAME),
    ):
        if source is not None:
            written.append(Path(shutil.copyfile(source, directory / name)))
    signatures = _approvals(study.edd)
    if signatures:
        (directory / APPROVALS_DIR).mkdir(exist_ok=True)
    for signature in signatures:
        written.append(Path(shutil.copyfile(signature, directory / APPROVALS_DIR / signature.name)))
    meta = directory / META_NAME
    data = {"schema": SCHEMA, "pr_number": handover.pr_number, "head_sha": handover.head_sha}
    meta.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [meta, *written]


def _read_bounded(path: Path, limit: int) -> bytes:
    if path.is_symlink() or not path.is_file():
        raise InputError("missing, or not a regular file", location=Location(str(path)))
    if path.stat().st_size > limit:
        raise InputError(f"larger than {limit:,} bytes; refused", location=Location(str(path)))
    return path.read_bytes()[:limit]


def _check_meta(data: Any, file: str) -> Handover:
    if not isinstance(data, dict):
        raise ValidationFailed(file, [("", "must be a JSON object")])
    problems: list[tuple[str, str]] = []
    if data.get("schema") != SCHEMA:
        hint = (
            " (an artifact from an older mlaudit: re-run the audit)" if data.get("schema") else ""
        )
        problems.append(("/schema", f"must be {SCHEMA!r}{hint}"))
    number = data.get("pr_number")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**31:
        problems.append(("/pr_number", "must be an integer between 1 and 2^31-1"))
    sha = data.get("head_sha")
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        problems.append(("/head_sha", "must be 40 lowercase hex digits"))
    # The status key is never the artifact's to choose: it comes from the EDD id verified.
    unknown = sorted(set(data) - {"schema", "pr_number", "head_sha"})
    if unknown:
        problems.append(("", f"unexpected fields: {', '.join(map(str, unknown))[:200]}"))
    if problems:
        raise ValidationFailed(file, problems)
    assert isinstance(number, int)
    assert isinstance(sha, str)
    return Handover(pr_number=number, head_sha=sha)


def _read_meta(directory: Path) -> Handover:
    meta_path = directory / META_NAME
    try:
        data = json.loads(_read_bounded(meta_path, MAX_META_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputError("not JSON", location=Location(str(meta_path))) from None
    return _check_meta(data, str(meta_path))


def _copy_signatures(directory: Path, private: Path) -> None:
    folder = directory / APPROVALS_DIR
    if folder.is_symlink() or not folder.is_dir():
        return
    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".sig")
    if len(names) > MAX_APPROVALS:
        raise InputError(f"more than {MAX_APPROVALS} approvals", location=Location(str(folder)))
    (private / APPROVALS_DIR).mkdir()
    for name in names:
        if not _SIGNATURE_NAME.fullmatch(name):
            raise InputError("not an approval file name", location=Location(str(folder / name)))
        data = _read_bounded(folder / name, MAX_SIGNATURE_BYTES)
        (private / APPROVALS_DIR / name).write_bytes(data)


def read_artifact(directory: Path, private: Path) -> tuple[Handover, StudyDocuments]:
    """The artifact's PR claim and its documents, copied into the empty folder `private`."""
    handover = _read_meta(directory)
    private.mkdir(parents=True, exist_ok=True)
    for name, limit in LIMITS.items():
        if name == CHECKPOINT_NAME and not (directory / name).exists():
            continue
        (private / name).write_bytes(_read_bounded(directory / name, limit))
    _copy_signatures(directory, private)
    checkpoint = private / CHECKPOINT_NAME
    return handover, StudyDocuments(
        edd=private / EDD_NAME,
        results=private / RESULTS_NAME,
        analysis=private / ANALYSIS_NAME,
        checkpoint=checkpoint if checkpoint.exists() else None,
    )
