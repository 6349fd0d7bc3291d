"""The standard predicates, through the strict in-toto-attestation protos."""

from __future__ import annotations

import hashlib

from google.protobuf import json_format
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2

from audit.bundle import layout
from audit.bundle.predicates import gate_test_result, verification_summary

MEMBERS = {
    "edd/edd.yaml": b"edd",
    "edd/approvals/a.sig": b"sig",
    "trust/allowed_signers": b"signers",
    layout.RESULTS: b"{}",
    layout.ANALYSIS: b"{}",
    layout.GATE: b"{}",
    "report/report.md": b"# report",
}
FAILING_GATE = {
    "passed": False,
    "rules": [
        {"rule": "edd-verified", "passed": True},
        {"rule": "claims", "passed": False},
    ],
}


def test_a_failing_gate_is_a_failed_test_result():
    subjects, predicate = gate_test_result(MEMBERS, FAILING_GATE, {})
    json_format.ParseDict(predicate, test_result_pb2.TestResult())
    assert predicate["result"] == "FAILED"
    assert predicate["passedTests"] == ["edd-verified"]
    assert predicate["failedTests"] == ["claims"]
    assert [c["name"] for c in predicate["configuration"]] == [
        "edd/approvals/a.sig",
        "edd/edd.yaml",
        layout.ANALYSIS,
        layout.RESULTS,
        "trust/allowed_signers",
    ]
    gate_digest = hashlib.sha256(b"{}").hexdigest()
    assert subjects == [{"name": layout.GATE, "digest": {"sha256": gate_digest}}]


def test_the_commit_under_test_is_a_git_subject():
    results = {"provenance": {"git": {"commit": "a" * 40}}}
    subjects, _ = gate_test_result(MEMBERS, {"passed": True, "rules": []}, results)
    assert subjects[0] == {"name": "commit under test", "digest": {"gitCommit": "a" * 40}}


def test_a_failed_verification_summary_parses_strictly():
    predicate = verification_summary(
        passed=False,
        time_verified="2026-12-02T00:00:00Z",
        resource_uri="mlaudit:edd:x:v1",
        input_attestations=[("attestation/statement.dsse.json", b"{}")],
    )
    assert predicate.pop("verifiedLevels") == ["FAILED"]  # a list, as the SLSA spec says
    json_format.ParseDict(predicate, vsa_pb2.VerificationSummary())
    assert predicate["verificationResult"] == "FAILED"
