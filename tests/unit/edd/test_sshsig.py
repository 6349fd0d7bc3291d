"""SSHSIG parsing refuses every malformed or disallowed signature with a clear reason.

Signatures here are built with `cryptography` so each field can be bent on purpose;
the interop matrix (tests/integration/edd) covers real ssh-keygen output.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from audit.edd.sshsig import SshPublicKey, signed_data, verify_signature
from audit.errors import SignatureError

NS = "mlaudit-edd"
MESSAGE = b"canonical bytes"


def s(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def armor(body: bytes) -> bytes:
    text = base64.b64encode(body)
    return b"-----BEGIN SSH SIGNATURE-----\n" + text + b"\n-----END SSH SIGNATURE-----\n"


def ed25519_key():
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, s(b"ssh-ed25519") + s(raw)


def sshsig(
    key_blob: bytes,
    signature: bytes,
    *,
    namespace: str = NS,
    hashalg: str = "sha512",
    version: int = 1,
    magic: bytes = b"SSHSIG",
    trailer: bytes = b"",
) -> bytes:
    body = magic + version.to_bytes(4, "big") + s(key_blob) + s(namespace.encode()) + s(b"")
    return armor(body + s(hashalg.encode()) + s(signature) + trailer)


def signed_ed25519(**kwargs):
    private, blob = ed25519_key()
    hashalg = kwargs.get("hashalg", "sha512")
    data = signed_data(
        kwargs.get("namespace", NS),
        hashalg if hashalg in ("sha256", "sha512") else "sha512",
        MESSAGE,
    )
    return sshsig(blob, s(b"ssh-ed25519") + s(private.sign(data)), **kwargs), blob


def test_good_ed25519_signature_and_fingerprint():
    armored, blob = signed_ed25519()
    key = verify_signature(armored, MESSAGE, NS)
    assert key == SshPublicKey("ssh-ed25519", blob)
    expected = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert key.fingerprint == f"SHA256:{expected}"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"version": 2}, "unsupported SSHSIG version 2"),
        ({"magic": b"SSHSIH"}, "magic preamble"),
        ({"trailer": b"\x00"}, "trailing bytes"),
        ({"hashalg": "sha1"}, "message hash 'sha1' is not allowed"),
        ({"hashalg": "md5"}, "message hash 'md5' is not allowed"),
        ({"namespace": "git"}, "namespace 'git', not 'mlaudit-edd'"),
    ],
)
def test_refusals(kwargs, reason):
    armored, _ = signed_ed25519(**kwargs)
    with pytest.raises(SignatureError, match=reason):
        verify_signature(armored, MESSAGE, NS)


@pytest.mark.parametrize(
    "armored",
    [
        b"",
        b"-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
        b"-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
        b"-----BEGIN PGP SIGNATURE-----\nAAAA\n-----END PGP SIGNATURE-----\n",
        armor(b"SSHSIG\x00\x00\x00\x01\xff\xff\xff\xff"),
        b"A" * 70_000,
    ],
)
def test_malformed_armor_and_truncation(armored):
    with pytest.raises(SignatureError):
        verify_signature(armored, MESSAGE, NS)


def test_tampered_message():
    armored, _ = signed_ed25519()
    with pytest.raises(SignatureError, match="does not match the content"):
        verify_signature(armored, MESSAGE + b" ", NS)


def test_signature_type_must_fit_key():
    private, blob = ed25519_key()
    data = signed_data(NS, "sha512", MESSAGE)
    armored = sshsig(blob, s(b"rsa-sha2-512") + s(private.sign(data)))
    with pytest.raises(SignatureError, match="does not fit"):
        verify_signature(armored, MESSAGE, NS)


def rsa_signature(bits: int, sig_type: bytes, algorithm) -> bytes:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = private.public_key().public_numbers()

    def mpint(value: int) -> bytes:
        return s(value.to_bytes(value.bit_length() // 8 + 1, "big"))

    blob = s(b"ssh-rsa") + mpint(numbers.e) + mpint(numbers.n)
    raw = private.sign(signed_data(NS, "sha512", MESSAGE), padding.PKCS1v15(), algorithm)
    return sshsig(blob, s(sig_type) + s(raw))


def test_rsa_sha1_and_small_keys_are_refused():
    with pytest.raises(SignatureError, match="'ssh-rsa' is not allowed"):
        verify_signature(rsa_signature(2048, b"ssh-rsa", hashes.SHA1()), MESSAGE, NS)
    with pytest.raises(SignatureError, match="1024 bits"):
        verify_signature(rsa_signature(1024, b"rsa-sha2-256", hashes.SHA256()), MESSAGE, NS)
    key = verify_signature(rsa_signature(2048, b"rsa-sha2-256", hashes.SHA256()), MESSAGE, NS)
    assert key.key_type == "ssh-rsa"


def test_ecdsa_curve_must_match_key_type():
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    blob = s(b"ecdsa-sha2-nistp256") + s(b"nistp384") + s(point)
    armored = sshsig(blob, s(b"ecdsa-sha2-nistp256") + s(s(b"\x01") + s(b"\x01")))
    with pytest.raises(SignatureError, match="wrong curve"):
        verify_signature(armored, MESSAGE, NS)


def test_unsupported_key_type():
    blob = s(b"ssh-dss") + s(b"\x01") * 4
    with pytest.raises(SignatureError, match="'ssh-dss' is not supported"):
        verify_signature(sshsig(blob, s(b"ssh-dss") + s(b"x" * 40)), MESSAGE, NS)


def test_public_key_parsing():
    _, blob = ed25519_key()
    text = base64.b64encode(blob).decode()
    assert SshPublicKey.from_openssh("ssh-ed25519", text).blob == blob
    with pytest.raises(ValueError, match="does not match"):
        SshPublicKey.from_openssh("ssh-rsa", text)
    with pytest.raises(ValueError, match="base64"):
        SshPublicKey.from_openssh("ssh-ed25519", "%%%")


def test_bytes_after_a_plain_signature_are_refused():
    private, blob = ed25519_key()
    data = signed_data(NS, "sha512", MESSAGE)
    armored = sshsig(blob, s(b"ssh-ed25519") + s(private.sign(data)) + b"\x01\x00\x00\x00\x01")
    with pytest.raises(SignatureError, match="trailing bytes"):
        verify_signature(armored, MESSAGE, NS)
