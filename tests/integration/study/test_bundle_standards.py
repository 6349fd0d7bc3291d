"""Standard attestations, signatures and timestamps of the audit bundle, each checked by
an independent tool: the strict in-toto-attestation parser, securesystemslib's DSSE
verifier, `ssh-keygen -Y verify` and `openssl ts -verify` against a real local TSA.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from toystudy import ToyStudy, mlaudit

from audit.bundle import layout
from audit.bundle.archive import read_archive, write_archive

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def _edd_id(toy: ToyStudy) -> str:
    return json.loads((toy.out / "results.json").read_text())["edd"]["id"]


@pytest.fixture(scope="module")
def stamped(study, mlflow_server, tsa, tmp_path_factory) -> Path:
    """A checkpoint timestamped by the local TSA through the real CLI."""
    target = tmp_path_factory.mktemp("stamped") / "checkpoint.json"
    out = mlaudit(
        "track", "checkpoint", "--tracking-uri", mlflow_server.uri,
        "--experiment", _edd_id(study), "--tsa", tsa.url, "-o", target, cwd=study.repo,
    )  # fmt: skip
    assert "timestamped by" in out
    return target


def _create(study: ToyStudy, uri: str, checkpoint: Path, target: Path) -> Path:
    """`mlaudit bundle create`, in-process (the slow part is the server, not the CLI)."""
    from audit.cli.main import main

    argv = ["bundle", "create", "-o", target, "--edd", study.edd, "--dir", study.out]
    argv += ["--trust-ref", "main", "--tracking-uri", uri, "--experiment", _edd_id(study)]
    argv += ["--checkpoint", checkpoint, "--sign-key", study.keys / "alice"]
    assert main([str(a) for a in argv]) == 0
    return target


@pytest.fixture(scope="module")
def bundle(study, mlflow_server, stamped, tmp_path_factory) -> Path:
    return _create(study, mlflow_server.uri, stamped, tmp_path_factory.mktemp("b") / "b.tar.gz")


@pytest.fixture
def verify(run_cli):
    """`mlaudit bundle verify FILE --json ...` in-process: its report, exit code checked."""

    def run(bundle: Path, *extra: str | Path) -> dict:
        result = run_cli("bundle", "verify", bundle, "--json", *extra)
        assert result.exit_code in (0, 1), result.stderr
        report = json.loads(result.stdout)
        assert (result.exit_code == 0) == report["passed"]
        return report

    return run


def _statement(envelope_bytes: bytes):
    """Through the strict in-toto parser: unknown fields and a missing digest are refused."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    payload = base64.b64decode(json.loads(envelope_bytes)["payload"])
    parsed = json_format.Parse(payload, statement_pb2.Statement())
    Statement.copy_from_pb(parsed).validate()
    return json.loads(payload)


def _sslib_verify(envelope_bytes: bytes, public_key: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    key = SSlibKey.from_crypto(load_ssh_public_key(public_key.read_bytes()))
    Envelope.from_dict(json.loads(envelope_bytes)).verify([key], 1)


# -- standard attestations and signatures -------------------------------------------------


def test_test_result_is_a_strict_in_toto_test_result_of_the_gate(bundle, study):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.test_result.v0 import test_result_pb2

    members = read_archive(bundle)
    statement = _statement(members[layout.TEST_RESULT])
    assert statement["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    json_format.ParseDict(statement["predicate"], test_result_pb2.TestResult())
    gate = json.loads((study.out / "gate.json").read_text())
    predicate = statement["predicate"]
    assert predicate["result"] == "PASSED"
    assert predicate["passedTests"] == [r["rule"] for r in gate["rules"]]
    assert predicate["failedTests"] == []
    named = {c["name"]: c["digest"]["sha256"] for c in predicate["configuration"]}
    for name in (layout.RESULTS, layout.ANALYSIS, "edd/edd.yaml", "trust/allowed_signers"):
        assert named[name] == hashlib.sha256(members[name]).hexdigest(), name
    commit = json.loads(members[layout.RESULTS])["provenance"]["git"]["commit"]
    assert statement["subject"][0] == {"name": "commit under test", "digest": {"gitCommit": commit}}
    _statement(members[layout.ATTESTATION])


def test_every_envelope_verifies_with_securesystemslib_and_ssh_keygen(
    bundle, study, tmp_path, verify
):
    from audit.bundle.attestation import PAYLOAD_TYPE, pae

    members = read_archive(bundle)
    public = study.keys / "alice.pub"
    allowed = tmp_path / "allowed"
    allowed.write_text("signer " + " ".join(public.read_text().split()[:2]) + "\n")
    for name in (layout.ATTESTATION, layout.TEST_RESULT):
        _sslib_verify(members[name], public)
        envelope = json.loads(members[name])
        sshsig = next(s for s in envelope["signatures"] if s["keyid"].startswith("SHA256:"))
        (tmp_path / "sig").write_bytes(base64.b64decode(sshsig["sig"]))
        message = pae(PAYLOAD_TYPE, base64.b64decode(envelope["payload"]))
        check = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "signer"]
        check += ["-n", "mlaudit-bundle", "-s", str(tmp_path / "sig")]
        ok = subprocess.run(check, input=message, capture_output=True, check=False)
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run(check, input=message + b" ", capture_output=True, check=False)
        assert bad.returncode != 0
    report = verify(bundle)
    assert report["passed"], report["findings"]
    assert any("standard DSSE signature (ed25519) verifies" in n for n in report["notes"])


def test_a_standard_verifier_refuses_another_key(bundle, study, tmp_path):
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        _sslib_verify(read_archive(bundle)[layout.ATTESTATION], study.keys / "carol.pub")


# -- trusted timestamps ---------------------------------------------------------------------


def test_checkpoint_timestamp_verifies_with_openssl_and_bundle_verify(
    bundle, tsa, tmp_path, verify
):
    checkpoint = json.loads(read_archive(bundle)[layout.CHECKPOINT])
    (tmp_path / "note").write_text(checkpoint["note"])
    (tmp_path / "token").write_bytes(base64.b64decode(checkpoint["timestamp"]["token"]))
    independent = ["openssl", "ts", "-verify", "-data", str(tmp_path / "note")]
    independent += ["-in", str(tmp_path / "token"), "-token_in", "-CAfile", str(tsa.ca_cert)]
    checked = subprocess.run(independent, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "Verification: OK" in checked.stdout

    for cert in (tsa.ca_cert, tsa.tsa_cert):
        report = verify(bundle, "--tsa-cert", cert)
        assert report["passed"], report["findings"]
        assert any("RFC 3161 timestamp verified" in n for n in report["notes"])
    unchecked = verify(bundle)
    assert any("not checked: give --tsa-cert" in n for n in unchecked["notes"])
    wrong = verify(bundle, "--tsa-cert", tsa.other_ca_cert)
    assert not wrong["passed"]
    assert [f["pointer"] for f in wrong["findings"]] == [f"{layout.CHECKPOINT}:/timestamp"]


def _edit_checkpoint(edit):
    def change(members: dict[str, bytes]) -> None:
        checkpoint = json.loads(members[layout.CHECKPOINT])
        edit(checkpoint)
        members[layout.CHECKPOINT] = json.dumps(checkpoint).encode()
        _reseal_main_statement(members)

    return change


def test_a_timestamp_over_another_checkpoint_is_refused(bundle, tsa, tmp_path, verify):
    """A forger who keeps the token but moves the log's size: the imprint no longer matches."""
    forged = _rewrite(
        bundle, tmp_path / "f.tar.gz", _edit_checkpoint(lambda c: c.update(size=c["size"] - 1))
    )
    report = verify(forged, "--tsa-cert", tsa.ca_cert)
    reasons = [f["reason"] for f in report["findings"] if f["pointer"].endswith(":/timestamp")]
    assert reasons == ["timestamp does not verify: message imprint mismatch"], report["findings"]


def test_verify_without_a_timestamp_fails_when_one_is_required(bundle, tsa, tmp_path, verify):
    plain = _rewrite(bundle, tmp_path / "p.tar.gz", _edit_checkpoint(lambda c: c.pop("timestamp")))
    report = verify(plain, "--tsa-cert", tsa.ca_cert)
    reasons = [f["reason"] for f in report["findings"] if f["pointer"].endswith(":/timestamp")]
    assert reasons == ["--tsa-cert given but the checkpoint is not timestamped"]


# -- verification summary --------------------------------------------------------------------


def test_vsa_is_a_signed_slsa_verification_summary_and_reproducible(
    bundle, study, tmp_path, verify, monkeypatch
):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.vsa.v1 import vsa_pb2

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764600000")
    for name in ("1.json", "2.json"):
        verify(bundle, "--vsa", tmp_path / name, "--sign-key", study.keys / "carol")
    raw = (tmp_path / "1.json").read_bytes()
    assert raw == (tmp_path / "2.json").read_bytes()
    _sslib_verify(raw, study.keys / "carol.pub")
    statement = _statement(raw)
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert statement["subject"] == [
        {"name": bundle.name, "digest": {"sha256": hashlib.sha256(bundle.read_bytes()).hexdigest()}}
    ]
    predicate = dict(statement["predicate"])
    # The SLSA spec makes verifiedLevels a list; the published proto a string
    # (in-toto/attestation#425): every other field goes through the strict proto parser.
    assert predicate.pop("verifiedLevels") == ["MLAUDIT_BUNDLE_VERIFIED"]
    json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["timeVerified"] == "2025-12-01T14:40:00Z"
    members = read_archive(bundle)
    inputs = {a["uri"]: a["digest"]["sha256"] for a in predicate["inputAttestations"]}
    assert inputs == {
        name: hashlib.sha256(members[name]).hexdigest()
        for name in (layout.ATTESTATION, layout.TEST_RESULT)
    }


# -- tampering -------------------------------------------------------------------------------


def _rewrite(source: Path, target: Path, change) -> Path:
    members = read_archive(source)
    change(members)
    with target.open("wb") as handle:
        write_archive(members, handle)
    return target


def _forge_results(members: dict[str, bytes]) -> None:
    results = json.loads(members[layout.RESULTS])
    results["trials"][0]["metrics"]["score"] = 0.1
    members[layout.RESULTS] = json.dumps(results).encode()


def _reseal_main_statement(members: dict[str, bytes]) -> None:
    """What a forger without the key can do: fix the manifest and an unsigned main statement."""
    from audit.bundle.attestation import envelope, statement

    manifest = json.loads(members[layout.MANIFEST])
    manifest["files"] = {
        n: hashlib.sha256(d).hexdigest()
        for n, d in sorted(members.items())
        if n not in (layout.MANIFEST, layout.ATTESTATION)
    }
    manifest["signed"] = False
    members[layout.MANIFEST] = json.dumps(manifest).encode()
    rest = {n: d for n, d in members.items() if n != layout.ATTESTATION}
    members[layout.ATTESTATION] = json.dumps(envelope(statement(rest, {"x": 1}), None)).encode()


def _stale_digests(members: dict[str, bytes]) -> list[str]:
    """What an outside tool finds: test-result names whose sha256 no longer matches."""
    stmt = json.loads(base64.b64decode(json.loads(members[layout.TEST_RESULT])["payload"]))
    named = stmt["subject"] + stmt["predicate"]["configuration"]
    return [
        d["name"]
        for d in named
        if "sha256" in d["digest"]
        and hashlib.sha256(members[d["name"]]).hexdigest() != d["digest"]["sha256"]
    ]


@pytest.mark.parametrize("reseal", [False, True], ids=["naive", "resealed"])
def test_a_tampered_member_fails_verify_and_the_exported_digests(bundle, tmp_path, reseal, verify):
    def change(members: dict[str, bytes]) -> None:
        _forge_results(members)
        if reseal:
            _reseal_main_statement(members)

    forged = _rewrite(bundle, tmp_path / "forged.tar.gz", change)
    assert _stale_digests(read_archive(forged)) == [layout.RESULTS]
    report = verify(forged, "--vsa", tmp_path / "vsa.json")
    assert not report["passed"]
    pointers = [f["pointer"] for f in report["findings"]]
    if reseal:
        assert f"{layout.TEST_RESULT}:/predicate/configuration/{layout.RESULTS}" in pointers
    else:
        assert f"{layout.RESULTS}" in pointers
    predicate = _statement((tmp_path / "vsa.json").read_bytes())["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]


# -- compatibility -----------------------------------------------------------------------------


def _as_before_issue_19(members: dict[str, bytes], key: Path) -> None:
    """Rebuild the manifest and statement as mlaudit did before issue 19 (main at b762086):

    no test result, no standard signature, no signer key files; an SSHSIG alone.
    """
    from audit.bundle.attestation import PAYLOAD_TYPE, pae, statement
    from audit.edd.sshsig import sign_with_ssh_keygen, verify_signature

    for name in (layout.TEST_RESULT, layout.SIGNER_PUB, layout.SIGNER_SSLIB, layout.ATTESTATION):
        members.pop(name, None)
    for name in [n for n in members if n.startswith("exports/")]:  # issue 19's other half
        del members[name]
    checkpoint = json.loads(members[layout.CHECKPOINT])
    del checkpoint["timestamp"]
    members[layout.CHECKPOINT] = json.dumps(checkpoint, indent=2, sort_keys=True).encode()
    manifest = json.loads(members[layout.MANIFEST])
    for role in [r for r in manifest["layout"] if r.startswith("export_")]:
        manifest["layout"].pop(role)
    for role in ("test_result", "signer_sslib"):
        manifest["layout"].pop(role, None)
    manifest["files"] = {
        n: hashlib.sha256(d).hexdigest() for n, d in sorted(members.items()) if n != layout.MANIFEST
    }
    members[layout.MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    predicate = {"edd": manifest["edd"], "decision": manifest["decision"], "signed": True}
    import rfc8785

    payload = rfc8785.dumps(statement(members, predicate))
    armored = sign_with_ssh_keygen(key, "mlaudit-bundle", pae(PAYLOAD_TYPE, payload))
    fingerprint = verify_signature(armored, pae(PAYLOAD_TYPE, payload), "mlaudit-bundle")
    members[layout.ATTESTATION] = json.dumps(
        {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [
                {"keyid": fingerprint.fingerprint, "sig": base64.b64encode(armored).decode()}
            ],
        }
    ).encode()


def test_a_bundle_from_before_the_standard_attestations_still_verifies(
    bundle, study, tmp_path, verify
):
    old = _rewrite(
        bundle, tmp_path / "old.tar.gz", lambda m: _as_before_issue_19(m, study.keys / "alice")
    )
    assert layout.TEST_RESULT not in read_archive(old)
    report = verify(old)
    assert report["passed"], report["findings"]
    assert any("bundle made before they existed" in n for n in report["notes"])
    assert any(n.startswith("attestation signed by SHA256:") for n in report["notes"])


def test_signed_and_stamped_bundle_is_byte_identical(
    bundle, study, mlflow_server, stamped, tmp_path
):
    again = _create(study, mlflow_server.uri, stamped, tmp_path / "again.tar.gz")
    assert again.read_bytes() == bundle.read_bytes()


# -- docs/security.md, as written ---------------------------------------------------------------


def _doc_commands() -> str:
    text = (REPO / "docs" / "security.md").read_text()
    section = text.split("## Verify a bundle without mlaudit\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 4, "the section's commands changed: update this test's count"
    return "\n".join(blocks)


def _run_doc(bundle: Path, study: ToyStudy, tsa, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir()
    env = dict(
        os.environ,
        BUNDLE=str(bundle),
        SIGNER_PUB=str(study.keys / "alice.pub"),
        TSA_CERT=str(tsa.ca_cert),
        # `python3` in the doc is any Python with securesystemslib: here the test's own.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    script = "set -euo pipefail\n" + _doc_commands()
    return subprocess.run(
        ["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, check=False
    )


def test_the_docs_verify_a_bundle_without_mlaudit_as_written(bundle, study, tsa, tmp_path):
    done = _run_doc(bundle, study, tsa, tmp_path / "ok")
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert output.count('Good "mlaudit-bundle" signature for bundle-signer') == 2
    assert "statement: signature and" in output
    assert "test-result: signature and" in output
    assert "Verification: OK" in output


def _forge_payload(members: dict[str, bytes]) -> None:
    envelope = json.loads(members[layout.TEST_RESULT])
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["result"] = "FAILED"
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    members[layout.TEST_RESULT] = json.dumps(envelope).encode()


def _add_file(members: dict[str, bytes]) -> None:
    members["results/extra.json"] = b"{}"


DOC_FORGERIES = {
    # signatures intact, a file changed: the test result's digest of it no longer matches
    "results": (_forge_results, "AssertionError: results/results.json"),
    "signature": (_forge_payload, "Signature verification failed"),
    "extra-file": (_add_file, "unlisted or missing files"),
}


@pytest.mark.parametrize("what", sorted(DOC_FORGERIES))
def test_the_docs_commands_catch_a_forgery(bundle, study, tsa, tmp_path, what):
    change, expected = DOC_FORGERIES[what]
    forged = _rewrite(bundle, tmp_path / "forged.tar.gz", change)
    done = _run_doc(forged, study, tsa, tmp_path / "run")
    assert done.returncode != 0, done.stdout
    assert expected in done.stdout + done.stderr
