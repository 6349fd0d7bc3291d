"""Gate results for publishing tests: the verdict the status and the check must show."""

from __future__ import annotations

from audit.documents.gate_result import GateResult
from audit.report.verdict import Verdict, gate_from_document

RULES = (
    ("edd-verified", "approvals"),
    ("protocol-as-signed", "protocol"),
    ("budget", "budget"),
    ("no-attrition", "attrition"),
    ("provenance", "provenance"),
    ("reproducible", "reproducibility"),
    ("claims", "claims"),
)


def gate(*failing: str) -> GateResult:
    """A gate result of the seven rules, `failing` (rule ids) failed."""
    rules = [
        {"rule": r, "kind": k, "title": r, "passed": r not in failing, "evidence": f"{r} evidence"}
        for r, k in RULES
    ]
    document = {
        "schema": "mlaudit/gate/v1",
        "passed": not failing,
        "rules": rules,
        "reasons": [f"{r}: {r} evidence" for r in failing],
        "edd": {"id": "toy-study", "version": 1, "digest": "d" * 64},
        "results_sha256": "e" * 64,
    }
    return gate_from_document(document, "gate.json")


def verdict(*failing: str) -> Verdict:
    return Verdict(gate(*failing))


NOT_GATED = Verdict(None)
