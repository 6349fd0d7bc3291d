"""The approval policy (.mlaudit/policy.yaml): quorum, roles, required roles, owners, seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

from audit.edd.allowed_signers import matches
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
