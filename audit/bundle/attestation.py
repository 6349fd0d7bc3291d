"""The bundle's in-toto Statement v1 wrapped in a DSSE envelope.

Subjects are the bundle's files with their sha256. With a key the envelope is
SSH-signed (namespace `mlaudit-bundle`) over DSSE's pre-authentication encoding;
without one it carries no signature and says so.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audit.errors import BundleError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlaudit.dev/audit-bundle/v1"
SIGNING_NAMESPACE = "mlaudit-bundle"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(files: Mapping[str, bytes], predicate: Mapping[str, Any]) -> dict[str, Any]:
    subjects = [
        {"name": name, "digest": {"sha256": hashlib.sha256(files[name]).hexdigest()}}
        for name in sorted(files)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def envelope(stmt: Mapping[str, Any], sign_key: Path | None) -> dict[str, Any]:
    payload = _canonical_json(stmt)
    signatures: list[dict[str, str]] = []
    if sign_key is not None:
        from audit.edd.sshsig import sign_with_ssh_keygen, verify_signature

        armored = sign_with_ssh_keygen(sign_key, SIGNING_NAMESPACE, pae(PAYLOAD_TYPE, payload))
        key = verify_signature(armored, pae(PAYLOAD_TYPE, payload), SIGNING_NAMESPACE)
        signatures.append(
            {"keyid": key.fingerprint, "sig": base64.b64encode(armored).decode("ascii")}
        )
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": signatures,
    }


def open_envelope(raw: bytes) -> tuple[dict[str, Any], list[str]]:
    """Decode an envelope; return the statement and the fingerprints whose signatures verify."""
    from audit.documents import parse_json

    try:
        env = parse_json(raw, "attestation/statement.dsse.json")
        payload = base64.b64decode(env["payload"], validate=True)
        if env["payloadType"] != PAYLOAD_TYPE:
            raise BundleError(f"attestation payloadType is {env['payloadType']!r}")
        stmt = parse_json(payload, "attestation payload")
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"attestation envelope is malformed: {error}") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise BundleError("attestation payload is not an in-toto Statement v1")
    verified: list[str] = []
    for entry in env.get("signatures") or []:
        from audit.edd.sshsig import verify_signature

        armored = base64.b64decode(entry.get("sig", ""), validate=True)
        key = verify_signature(armored, pae(PAYLOAD_TYPE, payload), SIGNING_NAMESPACE)
        if entry.get("keyid") not in (None, "", key.fingerprint):
            raise BundleError("attestation keyid does not match the signing key")
        verified.append(key.fingerprint)
    return stmt, verified


def _canonical_json(data: Any) -> bytes:
    import rfc8785

    return rfc8785.dumps(data)
