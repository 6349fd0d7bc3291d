"""Gated promotion: move a registry alias only to a version a verified, passing bundle vouches for.

The rule: the audit bundle verifies offline, its gate passed, the study's signed EDD
names this model and alias under `promotion`, the model version was produced by a
run the bundle names among its sealed records, and that run on the server still
carries the seal the bundle recorded. Only then is the alias moved (the append-only
registry keeps the move in its history, and refuses a gated alias moved any other
way: audit/tracking/registry.py). Every refusal says why.
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

# Set to the verified bundle's sha256 before the alias moves; the registry keeps it write-once.
PROMOTED_TAG = "mlaudit.promoted_by_bundle"
# Aliases the registry lets only a promoted version take. Comma-separated;
# `mlaudit server --gated-alias` sets it for the server's workers.
GATED_ALIASES_ENV = "MLAUDIT_GATED_ALIASES"
DEFAULT_GATED_ALIASES = ("champion",)


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


def promotion_allowed(members: dict[str, bytes], edd_member: str) -> tuple[str, list[str]] | None:
    """(model, aliases) the bundle's signed EDD lets this study move; None without `promotion`."""
    from audit.edd.safe_yaml import parse_yaml_bytes

    document = parse_yaml_bytes(members[edd_member], edd_member).value
    block = document.get("promotion") if isinstance(document, dict) else None
    if not isinstance(block, dict):
        return None
    return str(block["model"]), [str(alias) for alias in block["aliases"]]


def check_allowed(
    members: dict[str, bytes], edd_member: str, model: str, alias: str, where: Location
) -> None:
    allowed = promotion_allowed(members, edd_member)
    if allowed is None:
        raise CheckFailed(
            "the study's EDD names no `promotion` (which model and aliases its result may "
            "move), so nothing can be promoted on its evidence; add it and have it signed",
            location=where,
        )
    allowed_model, aliases = allowed
    if model != allowed_model:
        raise CheckFailed(
            f"the study's EDD lets it promote model {allowed_model!r}, not {model!r}",
            location=where,
        )
    if alias not in aliases:
        raise CheckFailed(
            f"the study's EDD lets it move the alias {' or '.join(map(repr, aliases))} "
            f"of {model!r}, not {alias!r}",
            location=where,
        )


def promote(client: Any, bundle: Path, model: str, version: str, alias: str) -> Promotion:
    """Check the evidence, then move `alias` of `model` to `version`; raise CheckFailed if not."""
    from audit.bundle import layout
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
    members = read_archive(bundle)
    # verify_bundle has checked the manifest, so its layout names the EDD it verified.
    manifest = json.loads(members[layout.MANIFEST])
    check_allowed(members, str(manifest["layout"]["edd"]), model, alias, where)
    sealed = sealed_runs_of(members)
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
