"""Where each piece of evidence lives inside an audit bundle."""

from __future__ import annotations

MANIFEST = "manifest.json"
ATTESTATION = "attestation/statement.dsse.json"
# Standard attestations and the public key of the standard DSSE signatures (issue 19).
TEST_RESULT = "attestation/test-result.dsse.json"
SIGNER_PUB = "attestation/signer.pub"
SIGNER_SSLIB = "attestation/signer.sslib.json"
INDEX = "index.html"
EDD_DIR = "edd"
APPROVALS_DIR = "edd/approvals"
TRUST_DIR = "trust"
TRUST_SOURCE = "trust/source.json"
RESULTS = "results/results.json"
ANALYSIS = "results/analysis.json"
GATE = "results/gate.json"
REPORT_MD = "report/report.md"
REPORT_HTML = "report/report.html"
RECORDS_DIR = "tracking/records"
CHECKPOINT = "tracking/checkpoint.json"
ENVIRONMENT_DIR = "environment"
DVC_LOCK = "dvc/dvc.lock"
METRIC_SOURCES_DIR = "metric-sources"  # + <trial dir>/<file the trial metrics came from>

# Names the trust root may have inside the bundle (as under .mlaudit/ on the base branch).
TRUST_FILES = ("allowed_signers", "policy.yaml", "revoked_keys")
