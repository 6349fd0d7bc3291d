"""The approval policy (.mlaudit/policy.yaml): quorum, roles, required roles, owners, seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.edd.allowed_signers import SignerEntry, matches, parse_allowed_signers
from audit.edd.load import schema_problems
from audit.edd.safe_yaml import parse_yaml_bytes
from audit.errors import ValidationFailed


@dataclass(frozen=True)
class Policy:
    quorum: int
    roles: dict[str, list[str]] = field(default_factory=dict)
    required_roles: list[str] = field(default_factory=list)
    owners_may_approve: bool = False
    min_seeds: int = 1

    def roles_of(self, principal: str) -> list[str]:
        """Roles whose patterns match the principal (a `!pattern` excludes it)."""
        return sorted(
            name for name, patterns in self.roles.items() if matches(principal, ",".join(patterns))
        )


def parse_policy(data: bytes, source: str) -> Policy:
    """Parse and check policy bytes; ValidationFailed lists every problem."""
    document = parse_yaml_bytes(data, source).value
    problems = schema_problems(document, "policy")
    if not problems:
        roles = document.get("roles", {})
        problems = [
            (f"/required_roles/{i}", f"role {name!r} is not defined under roles")
            for i, name in enumerate(document.get("required_roles", []))
            if name not in roles
        ]
    if problems:
        raise ValidationFailed(source, problems)
    return Policy(
        quorum=document["quorum"],
        roles={name: list(patterns) for name, patterns in document.get("roles", {}).items()},
        required_roles=list(document.get("required_roles", [])),
        owners_may_approve=document.get("owners_may_approve", False),
        min_seeds=document.get("min_seeds", 1),
    )


# -- can this EDD ever verify under this policy? --------------------------------------

PolicyProblem = tuple[str, str]  # (JSON pointer into the EDD, message)


def design_problems(
    document: dict[str, Any], policy: Policy, signers: list[SignerEntry], source: str
) -> list[PolicyProblem]:
    """What makes `edd verify` fail whatever is signed: too few seeds, approvers or roles.

    Checked before anyone signs (`edd validate --trust-ref`, `ablate plan --trust-ref`),
    so approvers never sign an EDD that can never verify. `source` names the policy.
    """
    problems: list[PolicyProblem] = []
    seeds = len(document["protocol"]["seeds"])
    if seeds < policy.min_seeds:
        problems.append(
            (
                "/protocol/seeds",
                f"plans {seeds} seed(s); the policy ({source}) needs min_seeds {policy.min_seeds}",
            )
        )
    approvers = _possible_approvers(document, policy, signers)
    if approvers is None:  # a wildcard principal: anyone may turn out to match
        return problems
    if len(approvers) < policy.quorum:
        who = ", ".join(sorted(approvers)) or "nobody"
        owners = "" if policy.owners_may_approve else " (owners may not approve their own EDD)"
        problems.append(
            (
                "",
                f"the policy ({source}) needs {policy.quorum} distinct approver(s) but "
                f"allowed_signers lets only {len(approvers)} approve this EDD: {who}{owners}",
            )
        )
    for role in policy.required_roles:
        if not any(role in policy.roles_of(principal) for principal in approvers):
            problems.append(
                (
                    "",
                    f"the policy ({source}) requires a {role!r} approval but no principal in "
                    "allowed_signers who may approve this EDD holds that role",
                )
            )
    return problems


def _possible_approvers(
    document: dict[str, Any], policy: Policy, signers: list[SignerEntry]
) -> set[str] | None:
    """Principals allowed_signers names who may approve this EDD; None if a pattern is open."""
    owners = {str(owner).casefold() for owner in document.get("owners", [])}
    approvers: set[str] = set()
    for entry in signers:
        for principal in entry.principals.split(","):
            if principal.startswith("!"):
                continue
            if "*" in principal or "?" in principal:
                return None
            if policy.owners_may_approve or principal.casefold() not in owners:
                approvers.add(principal)
    return approvers


def policy_problems_at(
    document: dict[str, Any], edd_path: Path, trust_ref: str, repo: Path | None = None
) -> list[PolicyProblem]:
    """`design_problems` against the trust files the protected `trust_ref` holds."""
    from audit.edd.trust import ALLOWED_SIGNERS, POLICY, locate_project, trust_from_git

    start = repo if repo is not None else edd_path.resolve().parent
    trust = trust_from_git(locate_project(start, trust_ref), trust_ref)
    policy = parse_policy(trust.files[POLICY], trust.label(POLICY))
    signers = parse_allowed_signers(trust.files[ALLOWED_SIGNERS], trust.label(ALLOWED_SIGNERS))
    return design_problems(document, policy, signers, trust.label(POLICY))
