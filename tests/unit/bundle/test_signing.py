"""Standard DSSE signatures beside SSHSIG, checked by securesystemslib and ssh-keygen."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from audit.bundle.attestation import PAYLOAD_TYPE, envelope, open_envelope, pae, statement
from audit.bundle.signing import BundleSigner, public_from_sslib, sslib_key, sslib_keyid
from audit.errors import BundleError

STATEMENT = statement({"a.txt": b"a"}, {"k": "v"})


def _key(tmp_path, kind: str, *extra: str):
    path = tmp_path / f"id_{kind}"
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "t", "-f", str(path), *extra]
    subprocess.run(argv, check=True)
    return path


@pytest.fixture(scope="module")
def ed25519(tmp_path_factory):
    return _key(tmp_path_factory.mktemp("k"), "ed25519")


@pytest.fixture(scope="module")
def signer(ed25519) -> BundleSigner:
    return BundleSigner.load(ed25519)


def _sslib(public_file):
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(load_ssh_public_key(public_file.read_bytes()))


def test_keyid_and_key_dict_are_securesystemslibs_own(signer, ed25519):
    from securesystemslib.signer import SSlibKey

    key = _sslib(ed25519.with_suffix(".pub"))
    public = signer.standard_public
    assert public is not None
    assert sslib_keyid(public) == key.keyid
    assert SSlibKey.from_dict(key.keyid, sslib_key(public)) == key


def test_an_envelope_verifies_with_securesystemslib_and_ssh_keygen(signer, ed25519, tmp_path):
    from securesystemslib.dsse import Envelope

    env = envelope(STATEMENT, signer)
    assert len(env["signatures"]) == 2
    key = _sslib(ed25519.with_suffix(".pub"))
    assert list(Envelope.from_dict(json.loads(json.dumps(env))).verify([key], 1)) == [key.keyid]
    sshsig = env["signatures"][0]
    (tmp_path / "sig").write_bytes(base64.b64decode(sshsig["sig"]))
    public = ed25519.with_suffix(".pub").read_text().split()
    (tmp_path / "allowed").write_text(f"signer {public[0]} {public[1]}\n")
    message = pae(PAYLOAD_TYPE, base64.b64decode(env["payload"]))
    argv = ["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "signer"]
    argv += ["-n", "mlaudit-bundle", "-s", str(tmp_path / "sig")]
    assert subprocess.run(argv, input=message, capture_output=True).returncode == 0


def test_open_envelope_checks_both_signatures(signer):
    public = signer.standard_public
    assert public is not None
    keys = {sslib_keyid(public): public}
    raw = json.dumps(envelope(STATEMENT, signer)).encode()
    stmt, signers = open_envelope(raw, "e.json", keys)
    assert stmt == STATEMENT
    assert signers.standard == [sslib_keyid(public)]
    assert len(signers.ssh) == 1
    with pytest.raises(BundleError, match="a key the bundle does not hold"):
        open_envelope(raw, "e.json", {})


def test_a_forged_standard_signature_is_refused(signer):
    public = signer.standard_public
    assert public is not None
    env = envelope(STATEMENT, signer)
    env["signatures"][1]["sig"] = base64.b64encode(b"\0" * 64).decode()
    with pytest.raises(BundleError, match=r"ed25519 signature of keyid .* does not verify"):
        open_envelope(json.dumps(env).encode(), "e.json", {sslib_keyid(public): public})


def test_a_key_dict_whose_keyid_lies_is_refused(signer):
    public = signer.standard_public
    assert public is not None
    with pytest.raises(BundleError, match="keyid does not match"):
        public_from_sslib({"keyid": "0" * 64, **sslib_key(public)})


def test_other_key_types_keep_the_ssh_signature_alone(tmp_path):
    rsa = BundleSigner.load(_key(tmp_path, "rsa", "-b", "2048"))
    assert rsa.standard is None
    assert "only Ed25519" in rsa.why_no_standard
    env = envelope(STATEMENT, rsa)
    assert [s["keyid"][:7] for s in env["signatures"]] == ["SHA256:"]
