"""mlaudit and `ssh-keygen -Y verify` must agree on every cell.

Cells: key type (ed25519, ECDSA P-256/384/521, RSA with rsa-sha2-512 from
ssh-keygen and rsa-sha2-256 built here, FIDO sk-ed25519 / sk-ecdsa simulated
in software, with and without the user-presence flag) x message hash x signing namespace x
validity window x tampered content; then namespace options, principal
patterns and revocation. mlaudit's side is the full `verify_edd` with a
quorum of one, so "agree" means: ssh-keygen succeeds exactly when the
approval is counted.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from edd_ssh_tools import (
    MINIMAL,
    NAMESPACE,
    Key,
    SecurityKey,
    python_sign_rsa_sha256,
    signers_line,
    ssh_sign,
    ssh_verify,
)

from audit.edd import load_edd, verify_edd

AT = datetime(2030, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
AT_SSH = "20300601120000Z"
PRINCIPAL = "alice@x"
POLICY = "quorum: 1\n"

SIGNERS = ["ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa", "rsa-sha2-256"]
# FIDO keys simulated in software; "-untouched" signs without the user-presence flag.
SIGNERS += ["sk-ed25519", "sk-ecdsa", "sk-ed25519-untouched"]
WINDOWS = {
    "open": "",
    "inside": 'valid-after="20300101Z",valid-before="20301231Z"',
    "expired": 'valid-before="20300601115959Z"',
    "not-yet": 'valid-after="20300601120001Z"',
    "starts-now": 'valid-after="20300601120000Z"',
    "ends-now": 'valid-before="20300601120000Z"',
}
CELLS = list(
    itertools.product(SIGNERS, ["sha256", "sha512"], [NAMESPACE, "git"], WINDOWS, [False, True])
)


SECURITY_KEYS = {
    "sk-ed25519": SecurityKey.generate("sk-ed25519"),
    "sk-ecdsa": SecurityKey.generate("sk-ecdsa"),
    "sk-ed25519-untouched": SecurityKey.generate("sk-ed25519"),
}
SECURITY_KEYS["sk-ed25519-untouched"].flags = 0x00


def key_for(keys: dict[str, Key], signer: str) -> Any:
    if signer in SECURITY_KEYS:
        return SECURITY_KEYS[signer]
    return keys["rsa"] if signer == "rsa-sha2-256" else keys[signer]


def sign(keys: dict[str, Key], signer: str, message: bytes, namespace: str, hashalg: str) -> bytes:
    key = key_for(keys, signer)
    if signer in SECURITY_KEYS:
        return key.sign(message, namespace, hashalg)
    if signer == "rsa-sha2-256":
        return python_sign_rsa_sha256(key, message, namespace, hashalg)
    return ssh_sign(key, message, namespace, hashalg)


@pytest.fixture(scope="module")
def signatures(keys: dict[str, Key]) -> dict[tuple[str, str, str], bytes]:
    """Every signature the matrix needs, over the untampered EDD, made once."""
    message = load_edd(MINIMAL).canonical
    return {
        (signer, hashalg, namespace): sign(keys, signer, message, namespace, hashalg)
        for signer, hashalg, namespace in itertools.product(
            SIGNERS, ["sha256", "sha512"], [NAMESPACE, "git"]
        )
    }


def cell_dir(
    tmp_path: Path, signature: bytes, tampered: bool, signers: str, revoked: str | None = None
) -> Path:
    folder = tmp_path / "study"
    (folder / "approvals").mkdir(parents=True)
    text = MINIMAL.read_text()
    if tampered:
        text = text.replace("max_trials: 100", "max_trials: 99")
    (folder / "edd.yaml").write_text(text)
    (folder / "approvals" / f"{PRINCIPAL}.sig").write_bytes(signature)
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "allowed_signers").write_text(signers)
    (trust / "policy.yaml").write_text(POLICY)
    if revoked is not None:
        (trust / "revoked_keys").write_text(revoked)
    return folder


def both_verdicts(
    folder: Path, principal: str = PRINCIPAL, revoked: bool = False
) -> tuple[bool, bool, str]:
    edd = folder / "edd.yaml"
    trust = folder.parent / "trust"
    result = verify_edd(load_edd(edd), trust_dir=trust, at=AT)
    (approval,) = result.approvals
    ours = approval.counted
    assert ours == result.passed
    theirs = ssh_verify(
        trust / "allowed_signers",
        principal,
        folder / "approvals" / f"{PRINCIPAL}.sig",
        load_edd(edd).canonical,
        verify_time=AT_SSH,
        revoked=trust / "revoked_keys" if revoked else None,
    )
    return ours, theirs, f"{approval.verdict}: {approval.reason}"


@pytest.mark.parametrize(
    ("signer", "hashalg", "namespace", "window", "tampered"),
    CELLS,
    ids=["-".join([s, h, n, w, "tampered" if t else "intact"]) for s, h, n, w, t in CELLS],
)
def test_cell(tmp_path, keys, signatures, signer, hashalg, namespace, window, tampered):
    key = key_for(keys, signer)
    folder = cell_dir(
        tmp_path,
        signatures[(signer, hashalg, namespace)],
        tampered,
        signers_line(PRINCIPAL, key, WINDOWS[window]),
    )
    ours, theirs, why = both_verdicts(folder)
    assert ours == theirs, why
    # The expected answer, so agreement cannot come from both being broken.
    in_window = window in ("open", "inside", "starts-now", "ends-now")
    expected = namespace == NAMESPACE and in_window and not tampered
    assert ours == expected, why


NAMESPACE_OPTIONS = [
    '"mlaudit-edd"',
    '"git,mlaudit-edd"',
    '"git"',
    '"mlaudit-*"',
    '"*,!mlaudit-edd"',
    '"MLAUDIT-EDD"',
]


@pytest.mark.parametrize("signer", ["ed25519", "ecdsa-p384", "rsa", "sk-ecdsa"])
@pytest.mark.parametrize("namespaces", NAMESPACE_OPTIONS)
def test_namespaces_option(tmp_path, keys, signatures, signer, namespaces):
    key = key_for(keys, signer)
    signature = signatures[(signer, "sha512", NAMESPACE)]
    folder = cell_dir(
        tmp_path, signature, False, signers_line(PRINCIPAL, key, f"namespaces={namespaces}")
    )
    ours, theirs, why = both_verdicts(folder)
    assert ours == theirs, why


PRINCIPAL_PATTERNS = [
    "alice@x",
    "*@x",
    "?lice@x",
    '"bob@x,alice@x"',
    '"*@x,!alice@x"',
    "bob@x",
    "ALICE@x",
    "alice@*",
]


@pytest.mark.parametrize("pattern", PRINCIPAL_PATTERNS)
def test_principal_patterns(tmp_path, keys, signatures, pattern):
    signature = signatures[("ed25519", "sha512", NAMESPACE)]
    folder = cell_dir(tmp_path, signature, False, signers_line(pattern, keys["ed25519"]))
    ours, theirs, why = both_verdicts(folder)
    assert ours == theirs, why


def test_key_of_another_principal(tmp_path, keys, signatures):
    signature = signatures[("ed25519", "sha512", NAMESPACE)]
    lines = signers_line(PRINCIPAL, keys["ecdsa-p256"]) + signers_line("bob@x", keys["ed25519"])
    ours, theirs, why = both_verdicts(cell_dir(tmp_path, signature, False, lines))
    assert (ours, theirs) == (False, False), why


@pytest.mark.parametrize("listed", [True, False])
def test_revoked_keys(tmp_path, keys, signatures, listed):
    signature = signatures[("ecdsa-p256", "sha512", NAMESPACE)]
    revoked = keys["ecdsa-p256" if listed else "ed25519"].public_line() + "\n"
    folder = cell_dir(
        tmp_path, signature, False, signers_line(PRINCIPAL, keys["ecdsa-p256"]), revoked
    )
    ours, theirs, why = both_verdicts(folder, revoked=True)
    assert ours == theirs == (not listed), why
