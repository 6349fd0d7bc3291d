"""gate.json as a typed value: every rule with its kind and evidence, and the one verdict.

The gate writes it (audit.gate.decide); the report, the publisher and the bundle read
it back with `read_gate_result`, never with a reader of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.documents.json_io import parse_object, read_bytes
from audit.findings import Finding

SCHEMA = "gate"
SCHEMA_ID = "mlaudit/gate/v1"

# What kind of evidence each rule judges. The report's headline says whether a
# failed gate means "the claims are not supported" or "the audit evidence failed",
# and names the kind; it reads this from gate.json, never from rule ids.
RULE_KINDS: dict[str, str] = {
    "edd-verified": "approvals",
    "protocol-as-signed": "protocol",
    "budget": "budget",
    "no-attrition": "attrition",
    "provenance": "provenance",
    "reproducible": "reproducibility",
    "claims": "claims",
    "tracking-sealed": "ledger",
}


@dataclass(frozen=True)
class RuleResult:
    """One gate rule judged: id, the kind of evidence it judges, and why it passed or failed."""

    rule: str
    title: str
    passed: bool
    evidence: str
    kind: str = ""  # default: the kind RULE_KINDS gives the rule

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", RULE_KINDS.get(self.rule, ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "title": self.title,
            "passed": self.passed,
            "evidence": self.evidence,
        }

    def finding(self) -> Finding:
        return Finding(self.rule, self.passed, self.evidence, kind=self.kind, title=self.title)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleResult:
        return cls(
            rule=str(data["rule"]),
            title=str(data["title"]),
            passed=bool(data["passed"]),
            evidence=str(data["evidence"]),
            kind=str(data["kind"]),
        )


@dataclass(frozen=True)
class EddRef:
    id: str
    version: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "digest": self.digest}


@dataclass(frozen=True)
class GateResult:
    """The decision: passed only when every rule passed."""

    passed: bool
    rules: tuple[RuleResult, ...]
    edd: EddRef | None = None
    results_sha256: str | None = None
    source: str = field(default="", compare=False)
    raw: bytes = field(default=b"", compare=False, repr=False)  # the bytes read, if read

    @property
    def failed_rules(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    @property
    def reasons(self) -> list[str]:
        return [f"{r.rule}: {r.evidence}" for r in self.rules if not r.passed]

    def findings(self) -> tuple[Finding, ...]:
        return tuple(r.finding() for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "passed": self.passed,
            "rules": [r.to_dict() for r in self.rules],
            "reasons": self.reasons,
        }
        if self.edd is not None:
            data["edd"] = self.edd.to_dict()
        if self.results_sha256 is not None:
            data["results_sha256"] = self.results_sha256
        return data


def parse_gate_result(raw: bytes, source: str) -> GateResult:
    from audit.errors import ValidationFailed

    document = parse_object(raw, source, SCHEMA)
    # A verdict that does not follow from its own rules is a forgery, not a gate result.
    if bool(document["passed"]) != all(r["passed"] for r in document["rules"]):
        raise ValidationFailed(source, [("/passed", "does not follow from the rules' results")])
    edd = document.get("edd")
    return GateResult(
        passed=bool(document["passed"]),
        rules=tuple(RuleResult.from_json(r) for r in document["rules"]),
        edd=EddRef(str(edd["id"]), int(edd["version"]), str(edd["digest"])) if edd else None,
        results_sha256=document.get("results_sha256"),
        source=source,
        raw=raw,
    )


def read_gate_result(path: Path) -> GateResult:
    return parse_gate_result(read_bytes(path), str(path))
