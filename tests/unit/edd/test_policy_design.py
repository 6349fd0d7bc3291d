"""Whether an EDD can ever verify under a policy, before anyone signs it."""

from __future__ import annotations

import base64

from audit.edd.allowed_signers import parse_allowed_signers
from audit.edd.policy import Policy, design_problems

KEY = (
    "ssh-ed25519 "
    + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(32)).decode()
)


def _signers(*principals: str):
    text = "".join(f"{p} {KEY}\n" for p in principals)
    return parse_allowed_signers(text.encode(), "allowed_signers")


def _document(seeds: int = 5, owners: tuple[str, ...] = ("owner@x",)) -> dict:
    return {"owners": list(owners), "protocol": {"seeds": list(range(seeds))}}


def test_a_satisfiable_design_has_no_problems():
    policy = Policy(quorum=1, roles={"risk": ["r@x"]}, required_roles=["risk"], min_seeds=5)
    assert design_problems(_document(), policy, _signers("r@x"), "p") == []


def test_owners_do_not_count_towards_the_quorum_unless_allowed():
    problems = design_problems(_document(), Policy(quorum=1), _signers("owner@x"), "p")
    assert problems == [
        (
            "",
            "the policy (p) needs 1 distinct approver(s) but allowed_signers lets only 0 "
            "approve this EDD: nobody (owners may not approve their own EDD)",
        )
    ]
    allowed = Policy(quorum=1, owners_may_approve=True)
    assert design_problems(_document(), allowed, _signers("owner@x"), "p") == []


def test_too_few_seeds_and_an_unheld_role():
    policy = Policy(quorum=1, roles={"risk": ["r@x"]}, required_roles=["risk"], min_seeds=10)
    problems = design_problems(_document(seeds=3), policy, _signers("a@x"), "p")
    assert problems[0] == ("/protocol/seeds", "plans 3 seed(s); the policy (p) needs min_seeds 10")
    assert "requires a 'risk' approval" in problems[1][1]


def test_a_wildcard_principal_may_be_anyone():
    policy = Policy(quorum=3, required_roles=[])
    assert design_problems(_document(), policy, _signers("*@x"), "p") == []
