"""The approval policy file: schema, defaults, roles."""

from __future__ import annotations

import pytest

from audit.edd.policy import Policy, parse_policy
from audit.errors import ValidationFailed


def test_defaults():
    assert parse_policy(b"quorum: 2\n", "p") == Policy(quorum=2)


def test_roles_with_patterns_and_negation():
    policy = parse_policy(
        b"quorum: 1\nroles:\n  risk: ['*@risk.example', '!intern@risk.example']\n"
        b"  lead: [carol@x]\nrequired_roles: [risk]\n",
        "p",
    )
    assert policy.roles_of("dana@risk.example") == ["risk"]
    assert policy.roles_of("intern@risk.example") == []
    assert policy.roles_of("carol@x") == ["lead"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"quorum: 0\n", ("/quorum", "0 is less than the minimum of 1")),
        (b"roles: {}\n", ("", "'quorum' is a required property")),
        (
            b"quorum: 1\nowners_may_approve: yes\n",
            ("/owners_may_approve", "'yes' is not of type 'boolean'"),
        ),
        (
            b"quorum: 1\nrequired_roles: [risk]\n",
            ("/required_roles/0", "role 'risk' is not defined under roles"),
        ),
        (
            b"quorum: 1\nquorum: 3\n",
            ("/quorum", "duplicate key 'quorum' (first at line 1) (line 2)"),
        ),
        (b"quorum: 1\nextra: 1\n", ("/extra", "unknown field")),
    ],
)
def test_problems(text, problem):
    with pytest.raises(ValidationFailed) as caught:
        parse_policy(text, "main:.mlaudit/policy.yaml")
    assert caught.value.problems == [problem]
    assert caught.value.file == "main:.mlaudit/policy.yaml"
