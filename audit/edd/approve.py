"""Write one approval: sign an EDD's canonical bytes with ssh-keygen into approvals/NAME.sig."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from audit.edd.load import load_edd
from audit.edd.sshsig import sign_with_ssh_keygen, verify_signature
from audit.edd.verify import APPROVALS_DIR, NAMESPACE, check_principal_name
from audit.errors import InputError, Location


@dataclass(frozen=True)
class SignedApproval:
    path: Path
    principal: str
    key_fingerprint: str
    digest: str


def sign_edd(edd_path: str | Path, *, key: Path, principal: str) -> SignedApproval:
    """Sign the EDD as `principal` with `key`; the file lands in the EDD's approvals/ folder."""
    check_principal_name(principal)
    edd = load_edd(edd_path, at=datetime.now(timezone.utc))
    armored = sign_with_ssh_keygen(key, NAMESPACE, edd.canonical)
    # Check our own output before writing it: a bad signature must not look like an approval.
    signer = verify_signature(armored, edd.canonical, NAMESPACE)
    target = _target(edd.path, principal)
    _write_atomically(target, armored)
    return SignedApproval(target, principal, signer.fingerprint, edd.digest)


def _target(edd_path: Path, principal: str) -> Path:
    folder = edd_path.parent / APPROVALS_DIR
    if folder.is_symlink():
        raise InputError(
            "approvals/ is a symlink; refusing to write through it", location=Location(str(folder))
        )
    folder.mkdir(exist_ok=True)
    target = folder / f"{principal}.sig"
    if target.is_symlink() or target.resolve().parent != folder.resolve():
        raise InputError("refusing to write outside approvals/", location=Location(str(target)))
    return target


def _write_atomically(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".sig-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
