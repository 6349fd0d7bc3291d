"""Helpers for the EDD integration tests: keys, ssh-keygen sign/verify, a study in a git repo."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
MINIMAL = REPO_ROOT / "tests" / "corpus" / "edd" / "valid" / "minimal.yaml"
NAMESPACE = "mlaudit-edd"

# name -> ssh-keygen arguments. One key of each supported type, made once per session.
KEY_SPECS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-p256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-p384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa-p521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "3072"],
}


@dataclass(frozen=True)
class Key:
    name: str
    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_suffix(".pub")

    def public_line(self) -> str:
        return " ".join(self.public.read_text().split()[:2])


def make_key(folder: Path, name: str, spec: list[str] | None = None) -> Key:
    private = folder / f"{name}.key"
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            *(spec or KEY_SPECS["ed25519"]),
            "-N",
            "",
            "-C",
            name,
            "-f",
            str(private),
        ],
        check=True,
    )
    private.with_name(f"{name}.key.pub").rename(private.with_suffix(".pub"))
    return Key(name, private)


def ssh_sign(
    key: Key, message: bytes, namespace: str = NAMESPACE, hashalg: str = "sha512"
) -> bytes:
    return subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "sign",
            "-n",
            namespace,
            "-f",
            str(key.private),
            "-O",
            f"hashalg={hashalg}",
        ],
        input=message,
        capture_output=True,
        check=True,
    ).stdout


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def python_sign_rsa_sha256(key: Key, message: bytes, namespace: str, hashalg: str) -> bytes:
    """An rsa-sha2-256 SSHSIG, which ssh-keygen itself never produces (it signs rsa-sha2-512)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    private = serialization.load_ssh_private_key(key.private.read_bytes(), password=None)
    blob = base64.b64decode(key.public_line().split()[1])
    digest = hashlib.new(hashalg, message).digest()
    signed = (
        b"SSHSIG"
        + _string(namespace.encode())
        + _string(b"")
        + _string(hashalg.encode())
        + _string(digest)
    )
    raw = private.sign(signed, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr, call-arg]
    signature = _string(b"rsa-sha2-256") + _string(raw)
    body = (
        b"SSHSIG"
        + (1).to_bytes(4, "big")
        + _string(blob)
        + _string(namespace.encode())
        + _string(b"")
        + _string(hashalg.encode())
        + _string(signature)
    )
    encoded = base64.b64encode(body)
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return b"\n".join(
        [b"-----BEGIN SSH SIGNATURE-----", *lines, b"-----END SSH SIGNATURE-----", b""]
    )


def ssh_verify(
    allowed_signers: Path,
    principal: str,
    signature: Path,
    message: bytes,
    *,
    namespace: str = NAMESPACE,
    verify_time: str | None = None,
    revoked: Path | None = None,
) -> bool:
    argv = ["ssh-keygen", "-Y", "verify", "-f", str(allowed_signers), "-I", principal]
    argv += ["-n", namespace, "-s", str(signature)]
    if verify_time:
        argv += ["-O", f"verify-time={verify_time}"]
    if revoked:
        argv += ["-r", str(revoked)]
    return subprocess.run(argv, input=message, capture_output=True, check=False).returncode == 0


@dataclass
class Study:
    """An EDD in a real git repository whose main branch holds the trust files."""

    repo: Path
    edd: Path

    @property
    def approvals(self) -> Path:
        return self.edd.parent / "approvals"

    def canonical(self) -> bytes:
        from audit.edd import load_edd

        return load_edd(self.edd).canonical

    def approve(
        self, principal: str, key: Key, *, namespace: str = NAMESPACE, file: str | None = None
    ) -> Path:
        self.approvals.mkdir(exist_ok=True)
        target = self.approvals / f"{file or principal}.sig"
        target.write_bytes(ssh_sign(key, self.canonical(), namespace))
        return target

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.repo), *args], check=True, capture_output=True, text=True
        ).stdout

    def commit_trust(
        self, allowed_signers: str, policy: str, revoked: str | None = None, message: str = "trust"
    ) -> str:
        trust = self.repo / ".mlaudit"
        trust.mkdir(exist_ok=True)
        (trust / "allowed_signers").write_text(allowed_signers)
        (trust / "policy.yaml").write_text(policy)
        if revoked is not None:
            (trust / "revoked_keys").write_text(revoked)
        self.git("add", ".mlaudit")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def edit(self, old: str, new: str) -> None:
        text = self.edd.read_text()
        assert old in text
        self.edd.write_text(text.replace(old, new))


def signers_line(principals: str, key: Key, options: str = "") -> str:
    middle = f" {options}" if options else ""
    return f"{principals}{middle} {key.public_line()}\n"


@dataclass
class SecurityKey:
    """A FIDO (sk-*) key simulated in software: what the authenticator would sign, signed here.

    ssh-keygen verifies such signatures without hardware, so the matrix can check
    that mlaudit and ssh-keygen agree on them too.
    """

    kind: str  # "sk-ed25519" | "sk-ecdsa"
    private: Any
    application: bytes = b"ssh:"
    flags: int = 0x01

    @classmethod
    def generate(cls, kind: str) -> SecurityKey:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if kind == "sk-ed25519":
            return cls(kind, ed25519.Ed25519PrivateKey.generate())
        return cls(kind, ec.generate_private_key(ec.SECP256R1()))

    @property
    def key_type(self) -> bytes:
        if self.kind == "sk-ed25519":
            return b"sk-ssh-ed25519@openssh.com"
        return b"sk-ecdsa-sha2-nistp256@openssh.com"

    def blob(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        public = self.private.public_key()
        if self.kind == "sk-ed25519":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return _string(self.key_type) + _string(raw) + _string(self.application)
        point = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return (
            _string(self.key_type)
            + _string(b"nistp256")
            + _string(point)
            + _string(self.application)
        )

    def public_line(self) -> str:
        return f"{self.key_type.decode()} {base64.b64encode(self.blob()).decode()}"

    def sign(self, message: bytes, namespace: str, hashalg: str) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        digest = hashlib.new(hashalg, message).digest()
        data = b"SSHSIG" + _string(namespace.encode()) + _string(b"")
        data += _string(hashalg.encode()) + _string(digest)
        tail = bytes([self.flags]) + (42).to_bytes(4, "big")
        signed = hashlib.sha256(self.application).digest() + tail + hashlib.sha256(data).digest()
        if self.kind == "sk-ed25519":
            raw = self.private.sign(signed)
        else:
            r, s = decode_dss_signature(self.private.sign(signed, ec.ECDSA(hashes.SHA256())))
            raw = _mpint(r) + _mpint(s)
        signature = _string(self.key_type) + _string(raw) + tail
        return _armor(self.blob(), namespace, hashalg, signature)


def _mpint(value: int) -> bytes:
    return _string(value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _armor(blob: bytes, namespace: str, hashalg: str, signature: bytes) -> bytes:
    body = b"SSHSIG" + (1).to_bytes(4, "big") + _string(blob) + _string(namespace.encode())
    body += _string(b"") + _string(hashalg.encode()) + _string(signature)
    encoded = base64.b64encode(body)
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return b"\n".join(
        [b"-----BEGIN SSH SIGNATURE-----", *lines, b"-----END SSH SIGNATURE-----", b""]
    )
