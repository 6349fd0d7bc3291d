"""Hostile trust files (policy.yaml, allowed_signers, revoked_keys) fail as input errors.

Regressions from the hardening review (issue 16): each case here was an exit 3
("internal error") or an unbounded wait on main before.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.edd.allowed_signers import (
    match_pattern,
    parse_allowed_signers,
    parse_revoked_keys,
    parse_ssh_time,
)
from audit.edd.policy import parse_policy
from audit.errors import TrustError, ValidationFailed

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"quorum: " + b"9" * 5000 + b"\n", "/quorum: integer 9999"),
        (b'quorum: 1\nroles: {a: ["x\x00"]}\n', "control character U+0000"),
        (b"quorum: 1\n\x1b[31mroles: {}\n", "control character U+001B is not allowed (line 2"),
    ],
    ids=["5000-digit-integer", "nul", "esc"],
)
def test_hostile_policy_is_a_validation_error_naming_the_file(data, expected):
    with pytest.raises(ValidationFailed) as caught:
        parse_policy(data, "origin/main:.mlaudit/policy.yaml")
    message = caught.value.user_message()
    assert message.startswith("origin/main:.mlaudit/policy.yaml")
    assert expected in message
    assert len(message) < 300  # the 5,000 digits are cut, not echoed


def test_time_beyond_the_calendar_in_a_zone_west_of_utc_is_a_trust_error(monkeypatch):
    # 9999-12-31 local time in New York is past datetime.max in UTC: OverflowError on main.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with pytest.raises(ValueError, match="not a valid time"):
            parse_ssh_time("99991231235959")
        data = f'a@example.com valid-before="99991231235959" {KEY}\n'.encode()
        with pytest.raises(TrustError, match="line 1: '99991231235959' is not a valid time"):
            parse_allowed_signers(data, "allowed_signers")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_many_star_principal_pattern_matches_in_linear_time():
    # `.*a.*a...b` as a regex backtracks for minutes on a run of `a`s.
    started = time.monotonic()
    assert not match_pattern("a" * 20_000, "*a" * 2_000 + "b")
    assert match_pattern("a" * 20_000 + "b", "*a" * 2_000 + "b")
    assert time.monotonic() - started < 2


def _regex_match(text: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.text("ab?*.\n", max_size=8), st.text("ab?*.\n", max_size=8))
def test_wildcard_matcher_agrees_with_the_regex_it_replaced(text, pattern):
    assert match_pattern(text, pattern) == _regex_match(text, pattern)


@pytest.mark.parametrize(
    "data",
    [b"\x00\x1b\xff\xfe", b"ssh-ed25519 " + b"A" * 100_000, b"ssh-ed25519 AAAA\x00 c", b"x\n" * 10],
)
def test_revoked_keys_garbage_is_a_trust_error(data):
    with pytest.raises(TrustError) as caught:
        parse_revoked_keys(data, "origin/main:.mlaudit/revoked_keys")
    assert caught.value.location is not None
    assert caught.value.location.file == "origin/main:.mlaudit/revoked_keys"
