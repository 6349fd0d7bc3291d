"""The SLSA verification summary `bundle verify --vsa` writes for the bundle it verified.

The subject is the bundle file by sha256; the input attestations are the bundle's
DSSE envelopes as read; the result is the verifier's, never the bundle's own claim.
The envelope is signed like the bundle's (SSHSIG, plus Ed25519 when possible) with
the verifier's key, so a standard DSSE verifier can check who vouched.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.bundle.attestation import envelope, statement
from audit.bundle.predicates import VSA_TYPE, verification_summary

if TYPE_CHECKING:
    from audit.bundle.signing import BundleSigner
    from audit.bundle.verify import BundleReport


def default_resource_uri(report: BundleReport, bundle: Path) -> str:
    """The study the bundle is about (EDD id and version), else the bundle's file name."""
    edd = report.edd
    if edd.get("id") and edd.get("version") is not None:
        return f"mlaudit:edd:{edd['id']}:v{edd['version']}"
    return f"mlaudit:bundle:{bundle.name}"


def summary_envelope(
    report: BundleReport,
    bundle: Path,
    *,
    time_verified: datetime,
    resource_uri: str | None = None,
    signer: BundleSigner | None = None,
) -> dict[str, Any]:
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    predicate = verification_summary(
        passed=report.passed,
        time_verified=time_verified.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        resource_uri=resource_uri or default_resource_uri(report, bundle),
        input_attestations=sorted(report.attestations.items()),
    )
    subject = [{"name": bundle.name, "digest": {"sha256": digest}}]
    return envelope(statement({}, predicate, VSA_TYPE, subject), signer)
