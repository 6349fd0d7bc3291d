"""SSHSIG (`ssh-keygen -Y sign`) signatures: parse, verify in pure Python, sign via ssh-keygen.

Follows OpenSSH PROTOCOL.sshsig. Verification never shells out; signing does,
through `ssh-keygen -Y sign`, so agents, encrypted and FIDO keys keep working.
Supported: ssh-ed25519, ecdsa-sha2-nistp256/384/521, RSA with rsa-sha2-256/512
(RSA keys of at least 2048 bits), and the FIDO types sk-ssh-ed25519@openssh.com and
sk-ecdsa-sha2-nistp256@openssh.com; message hashes sha256 and sha512 only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import InputError, SignatureError

MAGIC = b"SSHSIG"
ARMOR_BEGIN = b"-----BEGIN SSH SIGNATURE-----"
ARMOR_END = b"-----END SSH SIGNATURE-----"
HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
MAX_SIGNATURE_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
# The verdict an edit after signing gives: callers match it to say what to do next.
CONTENT_MISMATCH = "signature does not match the content (tampered, or signed another version)"

# key type -> (curve name, hash name) for ECDSA; the curve fixes the hash (RFC 5656).
_ECDSA = {
    "ecdsa-sha2-nistp256": ("nistp256", "sha256"),
    "ecdsa-sha2-nistp384": ("nistp384", "sha384"),
    "ecdsa-sha2-nistp521": ("nistp521", "sha512"),
}
_RSA_SIGNATURES = {"rsa-sha2-256": "sha256", "rsa-sha2-512": "sha512"}
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
SUPPORTED_KEY_TYPES = frozenset({"ssh-ed25519", "ssh-rsa", *_ECDSA, SK_ED25519, SK_ECDSA})


@dataclass(frozen=True)
class SshPublicKey:
    """An SSH public key as its type name and wire blob (what allowed_signers lists)."""

    key_type: str
    blob: bytes

    @property
    def fingerprint(self) -> str:
        """Like `ssh-keygen -l`: SHA256:<unpadded base64 of sha256(blob)>."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode()
        return "SHA256:" + digest.rstrip("=")

    def openssh(self) -> str:
        return f"{self.key_type} {base64.b64encode(self.blob).decode()}"

    @classmethod
    def from_openssh(cls, key_type: str, b64: str) -> SshPublicKey:
        """Parse `TYPE BASE64`; the type inside the blob must match the stated one."""
        try:
            blob = base64.b64decode(b64.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError("public key is not valid base64") from None
        try:
            inner = _Reader(blob).string().decode("ascii")
        except (SignatureError, UnicodeDecodeError):
            raise ValueError("public key blob is malformed") from None
        if inner != key_type:
            raise ValueError(f"key type {key_type!r} does not match the key ({inner!r})")
        return cls(key_type, blob)


@dataclass(frozen=True)
class SshSignature:
    """The fields of one SSHSIG blob."""

    public_key: SshPublicKey
    namespace: str
    hash_algorithm: str
    signature_type: str
    signature_blob: bytes
    # FIDO (sk-*) signatures carry the authenticator's flags and counter after the blob.
    signature_extra: bytes = b""


class _Reader:
    """RFC 4251 wire format reader that refuses to read past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def raw(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise SignatureError("signature is truncated or malformed")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def uint32(self) -> int:
        return int.from_bytes(self.raw(4), "big")

    def string(self) -> bytes:
        return self.raw(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError("signature holds a field that is not UTF-8") from None

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def end(self) -> None:
        if self.offset != len(self.data):
            raise SignatureError("signature has trailing bytes")


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def dearmor(armored: bytes) -> bytes:
    """The SSHSIG blob inside `-----BEGIN SSH SIGNATURE-----` armor."""
    if len(armored) > MAX_SIGNATURE_BYTES:
        raise SignatureError("signature file is too large")
    lines = [line.strip() for line in armored.strip().splitlines()]
    if len(lines) < 3 or lines[0] != ARMOR_BEGIN or lines[-1] != ARMOR_END:
        raise SignatureError("not an armored SSH signature (BEGIN/END SSH SIGNATURE lines)")
    try:
        return base64.b64decode(b"".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise SignatureError("armored SSH signature is not valid base64") from None


def parse_signature(armored: bytes) -> SshSignature:
    reader = _Reader(dearmor(armored))
    if reader.raw(6) != MAGIC:
        raise SignatureError("not an SSHSIG signature (magic preamble missing)")
    version = reader.uint32()
    if version != 1:
        raise SignatureError(f"unsupported SSHSIG version {version}")
    key_blob = reader.string()
    namespace = reader.text()
    reader.string()  # reserved; OpenSSH ignores its content and so do we
    hash_algorithm = reader.text()
    wrapped = reader.string()
    reader.end()
    key_type = _Reader(key_blob).text()
    inner = _Reader(wrapped)
    signature_type = inner.text()
    signature_blob = inner.string()
    return SshSignature(
        public_key=SshPublicKey(key_type, key_blob),
        namespace=namespace,
        hash_algorithm=hash_algorithm,
        signature_type=signature_type,
        signature_blob=signature_blob,
        signature_extra=inner.data[inner.offset :],
    )


def signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    """The bytes an SSHSIG signature covers (PROTOCOL.sshsig, section 3)."""
    digest = HASHES[hash_algorithm](message).digest()
    return (
        MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_algorithm.encode())
        + _string(digest)
    )


def verify_signature(armored: bytes, message: bytes, namespace: str) -> SshPublicKey:
    """Check an armored SSHSIG over `message` in `namespace`; return the signing key.

    Raises SignatureError with a one-line reason when anything is off. Whether
    the key is allowed to sign is the caller's question (allowed_signers).
    """
    signature = parse_signature(armored)
    if signature.namespace != namespace:
        raise SignatureError(
            f"signature is for namespace {signature.namespace!r}, not {namespace!r}"
        )
    if signature.hash_algorithm not in HASHES:
        raise SignatureError(
            f"message hash {signature.hash_algorithm!r} is not allowed (sha256, sha512 only)"
        )
    data = signed_data(namespace, signature.hash_algorithm, message)
    _verify_raw(signature, data)
    return signature.public_key


def _verify_raw(signature: SshSignature, data: bytes) -> None:
    from cryptography.exceptions import InvalidSignature

    key_type = signature.public_key.key_type
    if key_type in (SK_ED25519, SK_ECDSA):
        data = _security_key_data(signature, data)
    elif signature.signature_extra:
        raise SignatureError("signature has trailing bytes")
    try:
        if key_type in ("ssh-ed25519", SK_ED25519):
            _verify_ed25519(signature, data)
        elif key_type in _ECDSA or key_type == SK_ECDSA:
            _verify_ecdsa(signature, data)
        elif key_type == "ssh-rsa":
            _verify_rsa(signature, data)
        else:
            raise SignatureError(f"key type {key_type!r} is not supported")
    except InvalidSignature:
        raise SignatureError(CONTENT_MISMATCH) from None
    except ValueError as error:
        raise SignatureError(f"malformed key or signature: {error}") from None


def _security_key_data(signature: SshSignature, data: bytes) -> bytes:
    """What a FIDO authenticator signed (PROTOCOL.u2f): app hash, flags, counter, data hash."""
    reader = _Reader(signature.public_key.blob)
    reader.string()
    if signature.public_key.key_type == SK_ECDSA:
        reader.string()
    reader.string()
    application = reader.string()
    reader.end()
    extra = _Reader(signature.signature_extra)
    flags = extra.raw(1)
    counter = extra.raw(4)
    extra.end()
    # Like `ssh-keygen -Y verify`, the user-presence flag is not enforced here: the
    # two must agree on every approval, and keys made with no-touch-required sign too.
    return hashlib.sha256(application).digest() + flags + counter + hashlib.sha256(data).digest()


def _expect_type(signature: SshSignature, *allowed: str) -> None:
    if signature.signature_type not in allowed:
        raise SignatureError(
            f"signature algorithm {signature.signature_type!r} does not fit a "
            f"{signature.public_key.key_type} key"
        )


def _verify_ed25519(signature: SshSignature, data: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    _expect_type(signature, signature.public_key.key_type)
    reader = _Reader(signature.public_key.blob)
    reader.string()
    raw = reader.string()
    if signature.public_key.key_type == SK_ED25519:
        reader.string()  # application, already folded into the signed data
    reader.end()
    if len(raw) != 32 or len(signature.signature_blob) != 64:
        raise SignatureError("malformed ed25519 key or signature")
    Ed25519PublicKey.from_public_bytes(raw).verify(signature.signature_blob, data)


def _verify_ecdsa(signature: SshSignature, data: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    key_type = signature.public_key.key_type
    _expect_type(signature, key_type)
    curve_name, hash_name = _ECDSA.get(key_type, ("nistp256", "sha256"))
    reader = _Reader(signature.public_key.blob)
    reader.string()
    if reader.text() != curve_name:
        raise SignatureError("ECDSA key names the wrong curve")
    point = reader.string()
    if key_type == SK_ECDSA:
        reader.string()  # application, already folded into the signed data
    reader.end()
    curve: Any = {"nistp256": ec.SECP256R1, "nistp384": ec.SECP384R1, "nistp521": ec.SECP521R1}
    key = ec.EllipticCurvePublicKey.from_encoded_point(curve[curve_name](), point)
    sig = _Reader(signature.signature_blob)
    r, s = sig.mpint(), sig.mpint()
    sig.end()
    if r <= 0 or s <= 0:
        raise SignatureError("malformed ECDSA signature")
    algorithm: Any = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
    key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm[hash_name]()))


def _verify_rsa(signature: SshSignature, data: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if signature.signature_type not in _RSA_SIGNATURES:
        raise SignatureError(
            f"RSA signature algorithm {signature.signature_type!r} is not allowed "
            "(rsa-sha2-256 or rsa-sha2-512 only)"
        )
    reader = _Reader(signature.public_key.blob)
    reader.string()
    e, n = reader.mpint(), reader.mpint()
    reader.end()
    if n.bit_length() < MIN_RSA_BITS:
        raise SignatureError(f"RSA key has {n.bit_length()} bits; at least {MIN_RSA_BITS} needed")
    key = rsa.RSAPublicNumbers(e, n).public_key()
    algorithm: Any = hashes.SHA256 if signature.signature_type == "rsa-sha2-256" else hashes.SHA512
    key.verify(signature.signature_blob, data, padding.PKCS1v15(), algorithm())


def sign_with_ssh_keygen(key_path: str | Path, namespace: str, message: bytes) -> bytes:
    """Sign `message` with `ssh-keygen -Y sign -n NAMESPACE -f KEY` (no shell); armored bytes."""
    program = shutil.which("ssh-keygen")
    if program is None:
        raise InputError("ssh-keygen not found on PATH (install OpenSSH 8.2 or later)")
    key = Path(key_path)
    if not key.exists():
        raise InputError(f"signing key {key} does not exist")
    # A relative path starting with '-' would read as an option; anchor it.
    key_arg = str(key) if key.is_absolute() else os.path.join(".", str(key))
    process = subprocess.run(
        [program, "-Y", "sign", "-n", namespace, "-f", key_arg],
        input=message,
        capture_output=True,
        check=False,
    )
    if process.returncode != 0 or ARMOR_BEGIN not in process.stdout:
        detail = process.stderr.decode("utf-8", "replace").strip().splitlines()
        last = detail[-1] if detail else f"exit status {process.returncode}"
        raise SignatureError(f"ssh-keygen -Y sign failed: {last}")
    return process.stdout
