"""Who signs a bundle's DSSE envelopes, and how: SSHSIG plus a standard DSSE signature.

Every envelope gets an SSHSIG over DSSE's pre-authentication encoding (PAE), made
with `ssh-keygen -Y sign -n mlaudit-bundle` so agents and encrypted keys work, and
checkable with plain `ssh-keygen -Y verify`. When the same key is an Ed25519 key
that `cryptography` can load without a passphrase, the envelope also gets a raw
Ed25519 signature over the PAE: the one a standard DSSE verifier (securesystemslib's
`Envelope.verify`) checks. Its keyid is securesystemslib's default keyid of the
public key, so `SSlibKey.from_crypto(public_key)` finds it with no configuration.
This module never reads a passphrase and never prints key material.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import BundleError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SIGNING_NAMESPACE = "mlaudit-bundle"
STANDARD_SCHEME = "ed25519"


def sslib_key(public: Ed25519PublicKey) -> dict[str, Any]:
    """The public key as securesystemslib's key dict (`SSlibKey.from_dict(keyid, d)`)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "keytype": STANDARD_SCHEME,
        "scheme": STANDARD_SCHEME,
        "keyval": {"public": raw.hex()},
    }


def sslib_keyid(public: Ed25519PublicKey) -> str:
    """securesystemslib's default keyid: sha256 of the key dict's canonical JSON.

    For a dict of plain ASCII strings, RFC 8785 and securesystemslib's canonical JSON
    give the same bytes (sorted keys, no spaces); a unit test checks the keyid against
    `SSlibKey.from_crypto(...).keyid`.
    """
    import rfc8785

    return hashlib.sha256(rfc8785.dumps(sslib_key(public))).hexdigest()


@dataclass(frozen=True)
class BundleSigner:
    """An SSH private key file, and its Ed25519 key when a raw signature can be made."""

    key_path: Path
    standard: Ed25519PrivateKey | None
    why_no_standard: str = ""

    @classmethod
    def load(cls, key_path: Path) -> BundleSigner:
        try:
            data = key_path.read_bytes()
        except OSError as error:
            raise BundleError(f"cannot read the signing key {key_path}: {error.strerror}") from None
        key, why = _ed25519_private_key(data)
        return cls(key_path, key, why)

    @property
    def standard_public(self) -> Ed25519PublicKey | None:
        return self.standard.public_key() if self.standard is not None else None

    def sign(self, pae: bytes) -> list[dict[str, str]]:
        """DSSE signature entries over `pae`: the SSHSIG, then the raw Ed25519 one."""
        from audit.edd.sshsig import sign_with_ssh_keygen, verify_signature

        armored = sign_with_ssh_keygen(self.key_path, SIGNING_NAMESPACE, pae)
        key = verify_signature(armored, pae, SIGNING_NAMESPACE)
        entries = [{"keyid": key.fingerprint, "sig": base64.b64encode(armored).decode("ascii")}]
        if self.standard is not None:
            public = self.standard.public_key()
            if openssh_blob(public) != key.blob:
                raise BundleError("ssh-keygen signed with another key than the key file holds")
            raw = self.standard.sign(pae)
            entries.append(
                {"keyid": sslib_keyid(public), "sig": base64.b64encode(raw).decode("ascii")}
            )
        return entries


def _ed25519_private_key(data: bytes) -> tuple[Ed25519PrivateKey | None, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_ssh_private_key,
    )

    try:
        if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key: object = load_ssh_private_key(data, password=None)
        else:
            key = load_pem_private_key(data, password=None)
    except (TypeError, ValueError):
        # Encrypted, FIDO or agent-only keys: ssh-keygen still signs (SSHSIG).
        return None, "the key file cannot be read without a passphrase or is not a plain key"
    except Exception:  # cryptography raises UnsupportedAlgorithm for exotic key types
        return None, "the key type is not supported for a standard signature"
    if not isinstance(key, Ed25519PrivateKey):
        return None, "only Ed25519 keys get a standard DSSE signature"
    return key, ""


def openssh_blob(public: Ed25519PublicKey) -> bytes:
    """The SSH wire blob of an Ed25519 key: to tell that two signatures share one key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def verify_standard(public: Ed25519PublicKey, signature: bytes, pae: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(signature, pae)
    except InvalidSignature:
        return False
    return True


def public_from_sslib(document: Any) -> tuple[str, Ed25519PublicKey]:
    """keyid and key from a bundled `attestation/signer.sslib.json`."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        if document["keytype"] != STANDARD_SCHEME or document["scheme"] != STANDARD_SCHEME:
            raise BundleError("the standard signing key is not an ed25519 key")
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(document["keyval"]["public"]))
        keyid = str(document["keyid"])
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"the standard signing key is malformed: {error}") from None
    if keyid != sslib_keyid(public):
        raise BundleError("the standard signing key's keyid does not match the key")
    return keyid, public
