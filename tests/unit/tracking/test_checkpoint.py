"""Checkpoint documents: the signed note, parsing with pointed errors, real SSH signatures."""

from __future__ import annotations

import base64
import subprocess

import pytest

from audit.errors import SignatureError, ValidationFailed
from audit.tracking.checkpoint import (
    Checkpoint,
    check_signature,
    origin_of,
    parse_checkpoint,
    sign_checkpoint,
)

ROOT = "ab" * 32


def test_origin_names_host_and_experiment():
    assert origin_of("http://127.0.0.1:5000", "7") == "127.0.0.1:5000/experiments/7"
    assert origin_of("https://mlflow.example.com/", "1") == "mlflow.example.com/experiments/1"


def test_note_is_the_tlog_checkpoint_body():
    checkpoint = Checkpoint("h/experiments/1", "1", 12, ROOT)
    root64 = base64.b64encode(bytes.fromhex(ROOT)).decode()
    assert checkpoint.note() == f"h/experiments/1\n12\n{root64}\n".encode()
    document = checkpoint.to_json()
    assert document["format"] == "mlaudit.checkpoint/1"
    assert parse_checkpoint(document, "cp.json") == checkpoint


def test_every_problem_is_reported_with_its_pointer():
    with pytest.raises(ValidationFailed) as failed:
        parse_checkpoint({"origin": 3, "size": True, "root": "XYZ", "signature": 5}, "cp.json")
    assert failed.value.problems == [
        ("/origin", "must be a string"),
        ("/size", "must be a non-negative integer"),
        ("/root", "must be a sha256 hex digest (64 lowercase hex characters)"),
        ("/signature", "must be an armored SSH signature or null"),
    ]
    with pytest.raises(ValidationFailed, match="a checkpoint must be a JSON object"):
        parse_checkpoint([], "cp.json")


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def test_sign_and_check_with_real_ssh_keygen(ssh_key):
    signed = sign_checkpoint(Checkpoint("h/experiments/1", "1", 3, ROOT), ssh_key)
    assert signed.signature is not None
    assert signed.signature.startswith("-----BEGIN SSH SIGNATURE-----")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(ssh_key.with_suffix(".pub"))],
        capture_output=True, text=True, check=True,
    ).stdout.split()[1]  # fmt: skip
    assert check_signature(signed) == signed.signer == fingerprint
    # Any change to origin, size or root breaks the signature.
    for changed in (
        Checkpoint("other/experiments/1", "1", 3, ROOT, signature=signed.signature),
        Checkpoint("h/experiments/1", "1", 4, ROOT, signature=signed.signature),
        Checkpoint("h/experiments/1", "1", 3, "cd" * 32, signature=signed.signature),
    ):
        with pytest.raises(SignatureError):
            check_signature(changed)


def test_unsigned_checkpoint_has_nothing_to_check():
    with pytest.raises(SignatureError, match="not signed"):
        check_signature(Checkpoint("h/experiments/1", "1", 3, ROOT))
