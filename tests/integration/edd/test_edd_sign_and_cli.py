"""`mlaudit edd sign`, `canonical`, `digest` and the light-import promise, as a user runs them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from edd_ssh_tools import MINIMAL, NAMESPACE, Study, signers_line, ssh_verify

from audit.edd import load_edd
from audit.edd.sshsig import sign_with_ssh_keygen, verify_signature
from audit.errors import SignatureError


def test_sign_writes_a_signature_ssh_keygen_accepts(study: Study, people, run_cli, tmp_path):
    result = run_cli(
        "edd", "sign", study.edd, "--key", people["bob"].private, "--principal", "bob@x"
    )
    assert result.exit_code == 0, result.stderr
    signature = study.approvals / "bob@x.sig"
    assert f"wrote {signature}" in result.stdout
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(signers_line("bob@x", people["bob"]))
    assert ssh_verify(allowed, "bob@x", signature, study.canonical())


def test_sign_with_public_key_needs_an_agent(study: Study, people, run_cli, monkeypatch):
    # -f with a .pub file makes ssh-keygen ask an agent; without one it fails cleanly.
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    result = run_cli(
        "edd", "sign", study.edd, "--key", people["bob"].public, "--principal", "bob@x"
    )
    assert result.exit_code == 1
    assert "ssh-keygen -Y sign failed" in result.stderr
    assert not (study.approvals / "bob@x.sig").exists()


@pytest.mark.parametrize(
    "principal", ["../evil", "a/b", ".hidden", "-rf", "..", "b\u0430d@x", "x" * 129, "a..b", ""]
)
def test_sign_refuses_principals_that_could_escape(study: Study, people, run_cli, principal):
    result = run_cli(
        "edd", "sign", study.edd, "--key", people["bob"].private, "--principal", principal
    )
    assert result.exit_code == 2
    assert "principal" in result.stderr
    assert not study.approvals.exists()
    assert not (study.edd.parent.parent / "evil.sig").exists()


def test_sign_refuses_a_symlinked_approvals_folder(study: Study, people, run_cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    study.approvals.symlink_to(elsewhere)
    result = run_cli(
        "edd", "sign", study.edd, "--key", people["bob"].private, "--principal", "bob@x"
    )
    assert result.exit_code == 1
    assert list(elsewhere.iterdir()) == []


def test_sign_refuses_an_invalid_or_expired_edd(study: Study, people, run_cli):
    study.edit('"2099-12-31T00:00:00Z"', '"2001-01-01T00:00:00Z"')
    result = run_cli(
        "edd", "sign", study.edd, "--key", people["bob"].private, "--principal", "bob@x"
    )
    assert result.exit_code == 1
    assert "/not_after: the EDD expired" in result.stderr


def test_missing_key_file(study: Study, run_cli, tmp_path):
    result = run_cli("edd", "sign", study.edd, "--key", tmp_path / "nope", "--principal", "bob@x")
    assert result.exit_code == 1
    assert "does not exist" in result.stderr


def test_sign_with_ssh_keygen_round_trip_and_namespace(people):
    signature = sign_with_ssh_keygen(people["carol"].private, "mlaudit-checkpoint", b"root")
    key = verify_signature(signature, b"root", "mlaudit-checkpoint")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(people["carol"].public)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert key.fingerprint == fingerprint
    with pytest.raises(SignatureError, match="namespace"):
        verify_signature(signature, b"root", NAMESPACE)


def test_canonical_is_raw_bytes_without_newline(run_mlaudit, tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "audit", "edd", "canonical", str(MINIMAL)],
        capture_output=True,
        check=True,
    )
    assert process.stdout == load_edd(MINIMAL).canonical
    assert not process.stdout.endswith(b"\n")
    assert json.loads(process.stdout)["id"] == "toy-study"


def test_canonical_keeps_non_ascii_bytes(tmp_path, run_cli):
    edd = tmp_path / "edd.yaml"
    edd.write_text(
        MINIMAL.read_text().replace("Toy study for tests", "Étude ✓ 🧪"), encoding="utf-8"
    )
    process = subprocess.run(
        [sys.executable, "-m", "audit", "edd", "canonical", str(edd)],
        capture_output=True,
        check=True,
    )
    assert "Étude ✓ 🧪".encode() in process.stdout
    digest = run_cli("edd", "digest", edd)
    assert digest.stdout.strip() == hashlib.sha256(process.stdout).hexdigest()


def test_canonical_ignores_formatting_and_key_order(tmp_path):
    edd = tmp_path / "edd.yaml"
    lines = MINIMAL.read_text().splitlines()
    body = [line for line in lines if not line.startswith("#")]
    top = [i for i, line in enumerate(body) if line and not line.startswith(" ")]
    edd.write_text("# reordered\n" + "\n".join(body[top[1] :] + body[: top[1]]) + "\n")
    assert load_edd(edd).canonical == load_edd(MINIMAL).canonical


def test_digest_json(run_cli):
    result = run_cli("edd", "digest", "--json", MINIMAL)
    assert json.loads(result.stdout) == {
        "algorithm": "sha256",
        "digest": load_edd(MINIMAL).digest,
        "file": str(MINIMAL),
    }


def test_validate_json_and_text(run_cli):
    result = run_cli("edd", "validate", "--json", MINIMAL)
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["planned_trials"] == 33
    text = run_cli("edd", "validate", MINIMAL)
    assert text.stdout.splitlines()[1] == f"sha256:{load_edd(MINIMAL).digest}"


def test_missing_file_is_one_line(run_cli, tmp_path):
    result = run_cli("edd", "validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2  # a missing input file is a usage error (README exit codes)
    assert result.stderr.strip().endswith("nope.yaml: no such file")


HEAVY = (
    "mlflow",
    "dvc",
    "numpy",
    "scipy",
    "pandas",
    "hydra",
    "omegaconf",
    "sqlalchemy",
    "matplotlib",
)


@pytest.mark.parametrize(
    "argv",
    [
        ["edd", "--help"],
        ["edd", "validate", str(MINIMAL)],
        ["edd", "canonical", str(MINIMAL)],
        ["edd", "digest", str(MINIMAL)],
        ["edd", "verify", str(MINIMAL), "--trust-ref", "HEAD"],
    ],
)
def test_edd_commands_stay_light(argv):
    code = (
        "import sys; from audit.cli.main import main; main(sys.argv[1:]); "
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    process = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False
    )
    assert "HEAVY=\n" in process.stdout, process.stdout


def test_validate_checks_not_after_at_the_given_time(run_cli):
    assert run_cli("edd", "validate", MINIMAL, "--at", "2099-12-30T23:59:59Z").exit_code == 0
    late = run_cli("edd", "validate", MINIMAL, "--at", "2099-12-31T00:00:00Z")
    assert late.exit_code == 1
    assert late.stderr.strip().endswith(
        "/not_after: the EDD expired at 2099-12-31T00:00:00Z (line 47)"
    )
    assert run_cli("edd", "validate", MINIMAL, "--at", "soon").exit_code == 2


def test_validate_checks_every_file_it_is_given(run_cli, tmp_path):
    broken = tmp_path / "edd.yaml"
    broken.write_text(MINIMAL.read_text().replace("hypothesis:", "hypothesis_typo:"))
    missing = tmp_path / "gone.yaml"
    result = run_cli("edd", "validate", broken, MINIMAL, missing)
    assert result.exit_code == 2  # the worst code wins: a missing file is a usage error
    assert f"{MINIMAL}: valid" in result.stdout  # checked though an earlier file failed
    assert str(broken) in result.stderr
    assert "gone.yaml: no such file" in result.stderr

    data = json.loads(run_cli("edd", "validate", "--json", MINIMAL, broken, missing).stdout)
    assert [(d["file"], d["valid"]) for d in data] == [
        (str(MINIMAL), True),
        (str(broken), False),
        (str(missing), False),
    ]
    assert data[1]["problems"]
    assert run_cli("edd", "validate", MINIMAL, MINIMAL).exit_code == 0
