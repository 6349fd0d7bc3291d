"""Gated promotion: move a registry alias only to a version a verified, passing bundle vouches for.

The rule: the audit bundle verifies offline, its gate passed, the model version was
produced by a run the bundle names among its sealed records, and that run on the
server still carries the seal the bundle recorded. Only then is the alias moved
(the append-only registry keeps the move in its history). Every refusal says why.
Never moves anything on a failed check; never reads argv or prints (the CLI does).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import CheckFailed, Location
from audit.tracking import record as run_record

PROMOTED_TAG = "mlaudit.promoted_by_bundle"


@dataclass(frozen=True)
class Promotion:
    """What was moved, and on whose evidence."""

    model: str
    version: str
    alias: str
    run_id: str
    bundle: str
    bundle_sha256: str

    def to_json(self) -> dict[str, str]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "bundle": self.bundle,
            "bundle_sha256": self.bundle_sha256,
        }


def sealed_runs_of(members: dict[str, bytes]) -> dict[str, str]:
    """run id -> sha256 of its sealed record, for every record the bundle carries."""
    from audit.bundle import layout

    runs: dict[str, str] = {}
    for name, data in members.items():
        if name.startswith(layout.RECORDS_DIR + "/") and name.endswith(".json"):
            # verify_bundle has checked that `sha256` is the digest of `record`.
            entry = json.loads(data)
            runs[str(entry["run_id"])] = str(entry["sha256"])
    return runs


def promote(client: Any, bundle: Path, model: str, version: str, alias: str) -> Promotion:
    """Check the evidence, then move `alias` of `model` to `version`; raise CheckFailed if not."""
    from audit.bundle.archive import read_archive
    from audit.bundle.verify import verify_bundle

    where = Location(str(bundle))
    report = verify_bundle(bundle)
    if not report.passed:
        raise CheckFailed(
            f"the bundle does not verify ({report.findings[0]}); nothing was promoted",
            location=where,
        )
    if not report.decision.get("passed"):
        raise CheckFailed(
            f"the bundle's gate did not pass; {model} version {version} cannot become {alias}",
            location=where,
        )
    sealed = sealed_runs_of(read_archive(bundle))
    model_version = client.get_model_version(model, version)
    run_id = str(model_version.run_id or "")
    if run_id not in sealed:
        source = f"run {run_id}" if run_id else "no run"
        raise CheckFailed(
            f"{model} version {version} comes from {source}, which this bundle does not name: "
            "only a model from the study's sealed trials can be promoted",
            location=where,
        )
    seal = client.get_run(run_id).data.tags.get(run_record.SEAL_SHA256_TAG)
    if seal != sealed[run_id]:
        raise CheckFailed(
            f"run {run_id} on the tracking server no longer carries the seal this bundle "
            "recorded; nothing was promoted",
            location=where,
        )
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    client.set_model_version_tag(model, version, PROMOTED_TAG, digest)
    client.set_registered_model_alias(model, alias, version)
    return Promotion(model, str(version), alias, run_id, str(bundle), digest)
