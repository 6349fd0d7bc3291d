"""The gate's result as reports and statuses show it: the one decision, never re-derived.

`read_gate` reads gate.json (`mlaudit gate -o gate.json`) into a `GateResult`;
`Verdict` says what a report or a status shows: passed, failed (and which kind
of failure), or "not gated" when no gate result was given. Nothing here looks
at the statistics or at rendered Markdown to decide anything.

gate.json is parsed by mlaudit's one strict reader (audit.documents: duplicate
keys, NaN/Infinity, non-UTF-8, schemas/gate.schema.json), then checked field by
field here for what the report relies on, each problem with the file and a pointer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from audit.errors import InputError, Location, ValidationFailed

SCHEMA = "mlaudit/gate/v1"
MAX_GATE_BYTES = 1024 * 1024
# Every kind the gate gives its rules (audit/gate.py RULE_KINDS); "claims" is the
# statistics, every other kind is audit evidence.
KINDS = (
    "approvals",
    "protocol",
    "budget",
    "attrition",
    "provenance",
    "reproducibility",
    "claims",
    "ledger",
)
CLAIMS_KIND = "claims"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RULE_ID = re.compile(r"[a-z][a-z0-9-]{0,63}")

State = Literal["passed", "failed", "not-gated"]


@dataclass(frozen=True)
class GateRule:
    rule: str
    kind: str
    title: str
    passed: bool
    evidence: str


@dataclass(frozen=True)
class GateResult:
    """gate.json: every rule with its evidence, and whether all passed."""

    passed: bool
    rules: tuple[GateRule, ...]
    reasons: tuple[str, ...]
    edd_id: str
    edd_version: int
    edd_digest: str
    results_sha256: str

    @property
    def failed_rules(self) -> tuple[GateRule, ...]:
        return tuple(r for r in self.rules if not r.passed)


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
    def evidence_failures(self) -> tuple[GateRule, ...]:
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
    from audit.documents import parse_object

    where = Location(str(path))
    if path.is_symlink() or not path.is_file():
        raise InputError("missing, or not a regular file", location=where)
    raw = path.read_bytes()
    if len(raw) > MAX_GATE_BYTES:
        raise InputError(f"larger than {MAX_GATE_BYTES:,} bytes; refused", location=where)
    return parse_gate(parse_object(raw, str(path), "gate"), str(path))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rule(item: Any, pointer: str, problems: list[tuple[str, str]]) -> GateRule | None:
    if not isinstance(item, dict):
        problems.append((pointer, "must be an object"))
        return None
    fields = {"rule": str, "kind": str, "title": str, "passed": bool, "evidence": str}
    for name, kind in fields.items():
        if not isinstance(item.get(name), kind):
            problems.append((f"{pointer}/{name}", f"must be a {kind.__name__}"))
    if isinstance(item.get("rule"), str) and not _RULE_ID.fullmatch(item["rule"]):
        problems.append((f"{pointer}/rule", "must be a rule id ([a-z0-9-])"))
    if isinstance(item.get("kind"), str) and item["kind"] not in KINDS:
        problems.append((f"{pointer}/kind", f"must be one of {', '.join(KINDS)}"))
    if any(p.startswith(pointer + "/") for p, _ in problems):
        return None
    return GateRule(item["rule"], item["kind"], item["title"], item["passed"], item["evidence"])


def parse_gate(document: Any, file: str) -> GateResult:
    """A gate document checked field by field; `passed` must agree with its rules."""
    if not isinstance(document, dict):
        raise ValidationFailed(file, [("", "a gate result must be a JSON object")])
    problems: list[tuple[str, str]] = []
    if document.get("schema") != SCHEMA:
        problems.append(("/schema", f"must be {SCHEMA!r}"))
    if not isinstance(document.get("passed"), bool):
        problems.append(("/passed", "must be true or false"))
    rules_in = document.get("rules")
    rules: list[GateRule] = []
    if not isinstance(rules_in, list) or not rules_in:
        problems.append(("/rules", "must be a non-empty list"))
    else:
        for index, item in enumerate(rules_in):
            rule = _rule(item, f"/rules/{index}", problems)
            if rule is not None:
                rules.append(rule)
    reasons = document.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        problems.append(("/reasons", "must be a list of strings"))
    edd = document.get("edd")
    if not isinstance(edd, dict):
        problems.append(("/edd", "must be an object with id, version, digest"))
        edd = {}
    if not isinstance(edd.get("id"), str) or not edd.get("id"):
        problems.append(("/edd/id", "must be a non-empty string"))
    if not _is_int(edd.get("version")):
        problems.append(("/edd/version", "must be an integer"))
    if not isinstance(edd.get("digest"), str) or not _HEX64.fullmatch(edd["digest"]):
        problems.append(("/edd/digest", "must be a sha256 hex digest"))
    results_sha = document.get("results_sha256")
    if not isinstance(results_sha, str) or not _HEX64.fullmatch(results_sha):
        problems.append(("/results_sha256", "must be a sha256 hex digest"))
    if not problems and document["passed"] != all(r.passed for r in rules):
        # A gate passes only when every rule passes: anything else was edited by hand.
        problems.append(("/passed", "disagrees with its rules"))
    if problems:
        raise ValidationFailed(file, problems)
    return GateResult(
        passed=document["passed"],
        rules=tuple(rules),
        reasons=tuple(document["reasons"]),
        edd_id=edd["id"],
        edd_version=edd["version"],
        edd_digest=edd["digest"],
        results_sha256=str(results_sha),
    )


def check_gate_matches(gate: GateResult, analysis: dict[str, Any], file: str) -> None:
    """The gate must judge the very study the report shows (same EDD, same results)."""
    problems: list[tuple[str, str]] = []
    if gate.edd_digest != analysis.get("edd", {}).get("digest"):
        problems.append(("/edd/digest", "is not the analysis's EDD digest: another study"))
    if gate.results_sha256 != analysis.get("results_sha256"):
        problems.append(("/results_sha256", "is not the results the analysis was computed from"))
    if problems:
        raise ValidationFailed(file, problems)
