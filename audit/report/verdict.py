"""The gate's result as reports and statuses show it: the one decision, never re-derived.

`read_gate` reads gate.json (`mlaudit gate -o gate.json`) with mlaudit's one
strict reader into the one `GateResult` type (audit.documents); `Verdict` says
what a report or a status shows: passed, failed (and which kind of failure), or
"not gated" when no gate result was given. Nothing here looks at the statistics
or at rendered Markdown to decide anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from audit.documents.gate_result import GateResult, RuleResult
from audit.errors import InputError, Location, ValidationFailed

MAX_GATE_BYTES = 1024 * 1024
# "claims" is the statistics; every other kind of rule judges the audit evidence.
CLAIMS_KIND = "claims"

State = Literal["passed", "failed", "not-gated"]


@dataclass(frozen=True)
class Verdict:
    """What a report, a commit status and a check run show: the gate's result or none."""

    gate: GateResult | None

    @property
    def state(self) -> State:
        if self.gate is None:
            return "not-gated"
        return "passed" if self.gate.passed else "failed"

    @property
    def evidence_failures(self) -> tuple[RuleResult, ...]:
        """Failed rules that judge the audit evidence (everything but the claims)."""
        failed = self.gate.failed_rules if self.gate else ()
        return tuple(r for r in failed if r.kind != CLAIMS_KIND)

    @property
    def claims_failed(self) -> bool:
        failed = self.gate.failed_rules if self.gate else ()
        return any(r.kind == CLAIMS_KIND for r in failed)

    def word(self) -> str:
        return {"passed": "PASSED", "failed": "FAILED", "not-gated": "NOT GATED"}[self.state]

    def failure_kind(self) -> str:
        """'audit evidence failed: approvals (edd-verified)', 'claims not supported', both."""
        parts = []
        evidence = self.evidence_failures
        if evidence:
            named = ", ".join(f"{r.kind} ({r.rule})" for r in evidence)
            parts.append(f"audit evidence failed: {named}")
        if self.claims_failed:
            parts.append("claims not supported")
        return "; ".join(parts)

    def summary(self) -> str:
        """One plain line (no markup) for a status description or a check title."""
        if self.gate is None:
            return "NOT GATED: no gate result was given; this is not a merge decision"
        if self.gate.passed:
            return f"PASSED: the gate passed all {len(self.gate.rules)} rules"
        return f"FAILED: {self.failure_kind()}"


# -- reading gate.json -----------------------------------------------------------------


def read_gate(path: Path) -> GateResult:
    """gate.json from `mlaudit gate -o`, strictly: any other shape is refused."""
    from audit.documents.gate_result import read_gate_result

    where = Location(str(path))
    if path.is_symlink() or not path.is_file():
        raise InputError("missing, or not a regular file", location=where)
    if path.stat().st_size > MAX_GATE_BYTES:
        raise InputError(f"larger than {MAX_GATE_BYTES:,} bytes; refused", location=where)
    return read_gate_result(path)


def gate_from_document(document: dict[str, Any], source: str) -> GateResult:
    """A gate document held in memory, through the same strict checks as a file."""
    from audit.documents import dumps
    from audit.documents.gate_result import parse_gate_result

    return parse_gate_result(dumps(document), source)


def check_gate_matches(gate: GateResult, analysis: dict[str, Any], file: str) -> None:
    """The gate must judge the very study the report shows (same EDD, same results)."""
    problems: list[tuple[str, str]] = []
    if gate.edd is None or gate.edd.digest != analysis.get("edd", {}).get("digest"):
        problems.append(("/edd/digest", "is not the analysis's EDD digest: another study"))
    if gate.results_sha256 != analysis.get("results_sha256"):
        problems.append(("/results_sha256", "is not the results the analysis was computed from"))
    if problems:
        raise ValidationFailed(file, problems)
