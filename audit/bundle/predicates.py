"""Standard in-toto predicates about a study, for tools that do not know mlaudit.

- test result (`https://in-toto.io/attestation/test-result/v0.1`): the gate's rules as
  tests. Subjects are the commit under test (gitCommit) and gate.json; the
  configuration names the EDD, approvals, trust files and study documents by sha256.
- SLSA verification summary (`https://slsa.dev/verification_summary/v1`): written by
  `bundle verify` for the bundle file it verified.

Field names follow the in-toto attestation specs and their protos
(in_toto_attestation.predicates.test_result.v0, .vsa.v1). One known disagreement:
the VSA proto types `verifiedLevels` as a string while the SLSA spec makes it an
array; the maintainers call the spec authoritative (in-toto/attestation#425), so it
is an array here. Values come from the gate and the verifier, never from free text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit.bundle import layout
from audit.bundle.attestation import descriptor

TEST_RESULT_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
VSA_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://mlaudit.dev/bundle-verify/v1"
VSA_POLICY_URI = "https://mlaudit.dev/audit-bundle/v1/verification-policy"
# A custom level (the SLSA spec reserves the SLSA_ prefix): every check of
# `bundle verify` passed. On failure the spec's value is FAILED.
VERIFIED_LEVEL = "MLAUDIT_BUNDLE_VERIFIED"

# Members that configure the tests: what was judged, by which rules and trust.
_CONFIGURATION_PREFIXES = (layout.EDD_DIR + "/", layout.TRUST_DIR + "/")
_CONFIGURATION_FILES = (layout.RESULTS, layout.ANALYSIS)


def gate_test_result(
    members: Mapping[str, bytes], gate: Mapping[str, Any], results: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Subjects and predicate of the gate as an in-toto test result."""
    rules = [r for r in gate.get("rules", []) if isinstance(r, Mapping)]
    passed = [str(r.get("rule")) for r in rules if r.get("passed")]
    failed = [str(r.get("rule")) for r in rules if not r.get("passed")]
    configuration = [
        descriptor(name, members[name])
        for name in sorted(members)
        if name.startswith(_CONFIGURATION_PREFIXES) or name in _CONFIGURATION_FILES
    ]
    predicate = {
        "result": "PASSED" if gate.get("passed") and not failed else "FAILED",
        "configuration": configuration,
        "passedTests": passed,
        "warnedTests": [],
        "failedTests": failed,
    }
    subjects = [descriptor(layout.GATE, members[layout.GATE])]
    commit = ((results.get("provenance") or {}).get("git") or {}).get("commit")
    if isinstance(commit, str) and commit:
        subjects.insert(0, {"name": "commit under test", "digest": {"gitCommit": commit}})
    return subjects, predicate


def verification_summary(
    *,
    passed: bool,
    time_verified: str,
    resource_uri: str,
    input_attestations: Sequence[tuple[str, bytes]],
) -> dict[str, Any]:
    """The predicate of a SLSA VSA v1 for one bundle verification."""
    return {
        "verifier": {"id": VERIFIER_ID},
        "timeVerified": time_verified,
        "resourceUri": resource_uri,
        "policy": {"uri": VSA_POLICY_URI},
        "inputAttestations": [
            {"uri": name, "digest": descriptor(name, data)["digest"]}
            for name, data in input_attestations
        ],
        "verificationResult": "PASSED" if passed else "FAILED",
        "verifiedLevels": [VERIFIED_LEVEL if passed else "FAILED"],
        "slsaVersion": "1.0",
    }
