"""The bundle's in-toto Statements v1, each wrapped in a DSSE envelope.

The main Statement (predicate `https://mlaudit.dev/audit-bundle/v1`) has every
other member of the bundle as a subject with its sha256. Beside it stand standard
predicates that policy engines read: the gate as an in-toto test result
(audit.bundle.predicates). With a key every envelope is signed over DSSE's
pre-authentication encoding (audit.bundle.signing); without one it carries no
signature and says so.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit.errors import BundleError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audit.bundle.signing import BundleSigner

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mlaudit.dev/audit-bundle/v1"
SIGNING_NAMESPACE = "mlaudit-bundle"
_SSH_ARMOR = b"-----BEGIN SSH SIGNATURE-----"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what a signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def descriptor(name: str, data: bytes) -> dict[str, Any]:
    """An in-toto ResourceDescriptor naming a bundle member by its sha256."""
    return {"name": name, "digest": {"sha256": hashlib.sha256(data).hexdigest()}}


def statement(
    files: Mapping[str, bytes],
    predicate: Mapping[str, Any],
    predicate_type: str = PREDICATE_TYPE,
    subjects: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Statement v1; subjects are `files` by sha256 unless given."""
    if subjects is None:
        subjects = [descriptor(name, files[name]) for name in sorted(files)]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [dict(s) for s in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def envelope(stmt: Mapping[str, Any], signer: BundleSigner | None) -> dict[str, Any]:
    payload = _canonical_json(stmt)
    signatures = signer.sign(pae(PAYLOAD_TYPE, payload)) if signer is not None else []
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": signatures,
    }


@dataclass
class Signers:
    """Who signed an envelope, by kind of signature, after each one verified."""

    ssh: list[str] = field(default_factory=list)  # SHA256:... fingerprints
    ssh_blobs: list[bytes] = field(default_factory=list)
    standard: list[str] = field(default_factory=list)  # securesystemslib keyids

    def __bool__(self) -> bool:
        return bool(self.ssh or self.standard)


def open_envelope(
    raw: bytes,
    name: str = "attestation/statement.dsse.json",
    standard_keys: Mapping[str, Ed25519PublicKey] | None = None,
) -> tuple[dict[str, Any], Signers]:
    """Decode an envelope; return the statement and the signers whose signatures verify.

    A signature that does not verify raises: a bundle with a bad signature is refused,
    never read as unsigned.
    """
    from audit.documents import parse_json

    try:
        env = parse_json(raw, name)
        payload = base64.b64decode(env["payload"], validate=True)
        if env["payloadType"] != PAYLOAD_TYPE:
            raise BundleError(f"{name}: payloadType is {env['payloadType']!r}")
        stmt = parse_json(payload, f"{name} payload")
        entries = list(env.get("signatures") or [])
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"{name}: envelope is malformed: {error}") from None
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        raise BundleError(f"{name}: payload is not an in-toto Statement v1")
    signers = Signers()
    message = pae(PAYLOAD_TYPE, payload)
    for entry in entries:
        _check_signature(entry, message, name, standard_keys or {}, signers)
    return stmt, signers


def _check_signature(
    entry: Any,
    message: bytes,
    name: str,
    standard_keys: Mapping[str, Ed25519PublicKey],
    signers: Signers,
) -> None:
    from audit.bundle.signing import verify_standard
    from audit.edd.sshsig import verify_signature

    try:
        sig = base64.b64decode(entry.get("sig", ""), validate=True)
        keyid = str(entry.get("keyid") or "")
    except (ValueError, AttributeError) as error:
        raise BundleError(f"{name}: a signature is malformed: {error}") from None
    if sig.startswith(_SSH_ARMOR):
        key = verify_signature(sig, message, SIGNING_NAMESPACE)
        if keyid not in ("", key.fingerprint):
            raise BundleError(f"{name}: keyid does not match the SSH signing key")
        signers.ssh.append(key.fingerprint)
        signers.ssh_blobs.append(key.blob)
        return
    public = standard_keys.get(keyid)
    if public is None:
        raise BundleError(f"{name}: signature by keyid {keyid!r}, a key the bundle does not hold")
    if not verify_standard(public, sig, message):
        raise BundleError(f"{name}: the ed25519 signature of keyid {keyid} does not verify")
    signers.standard.append(keyid)


def _canonical_json(data: Any) -> bytes:
    import rfc8785

    return rfc8785.dumps(data)
