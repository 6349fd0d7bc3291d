"""The files each trial's metrics were read from, in the bundle and checked offline.

results.json records, per trial, the sha256 of every metric source file it read
(metrics.json, DVCLive's files, TensorBoard event files) and one digest over them,
which the trial's sealed run carries as a tag. The bundle holds the files; `bundle
verify` checks each against results.json and results.json's digest against the
sealed run, so a source file changed after the run is named.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from audit.bundle import layout
from audit.errors import escape_pointer_token

Fail = Callable[[str, str, str], None]


def _sourced_trials(results: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any], str]]:
    found = []
    for index, trial in enumerate(results.get("trials") or []):
        source = trial.get("metric_source") if isinstance(trial, Mapping) else None
        if isinstance(source, Mapping) and isinstance(trial.get("trial_dir"), str):
            found.append((index, source, str(trial["trial_dir"])))
    return found


def member_name(trial_dir: str, path: str) -> str:
    return f"{layout.METRIC_SOURCES_DIR}/{trial_dir}/{path}"


def collect(results: Mapping[str, Any], base_dir: Path) -> dict[str, bytes]:
    """Each recorded source file still under `base_dir` (the folder of results.json)."""
    members: dict[str, bytes] = {}
    for _, source, trial_dir in _sourced_trials(results):
        for path in sorted(source.get("files") or {}):
            local = base_dir / trial_dir / str(path)
            if local.is_file() and not local.is_symlink():
                members[member_name(trial_dir, str(path))] = local.read_bytes()
    return members


def check(
    results: Mapping[str, Any],
    members: Mapping[str, bytes],
    records: Mapping[str, Mapping[str, Any]],
    fail: Fail,
) -> list[str]:
    """Report every source file or digest that disagrees; returns notes (files not bundled)."""
    from audit.protocol.metric_sources.digest import source_sha256
    from audit.tracking.runspec import METRICS_SOURCE_SHA256_TAG

    notes = []
    for index, source, trial_dir in _sourced_trials(results):
        pointer = f"/trials/{index}/metric_source"
        entry = {k: v for k, v in source.items() if k != "sha256"}
        if source_sha256(entry, None) != source.get("sha256") and "run_id" not in source:
            fail(layout.RESULTS, f"{pointer}/sha256", "does not match the files listed beside it")
        sealed = records.get(str((results["trials"][index]).get("mlflow_run_id")))
        if sealed is not None:
            tag = (sealed.get("tags") or {}).get(METRICS_SOURCE_SHA256_TAG)
            if tag is not None and tag != source.get("sha256"):
                fail(layout.RESULTS, f"{pointer}/sha256", f"the sealed run has {tag}")
        for path, digest in sorted((source.get("files") or {}).items()):
            name = member_name(trial_dir, str(path))
            if name not in members:
                notes.append(f"{name} is not in the bundle")
            elif hashlib.sha256(members[name]).hexdigest() != digest:
                fail(
                    name,
                    "",
                    f"changed after the run: its sha256 differs from results.json "
                    f"{pointer}/files/{escape_pointer_token(str(path))}",
                )
    return notes
