"""allowed_signers parsing and matching, following ssh-keygen(1) ALLOWED SIGNERS."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest

from audit.edd.allowed_signers import (
    check_key,
    match_pattern_list,
    parse_allowed_signers,
    parse_revoked_keys,
    parse_ssh_time,
)
from audit.edd.sshsig import SshPublicKey
from audit.errors import TrustError


def fake_key(seed: int) -> SshPublicKey:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes([seed]) * 32
    return SshPublicKey("ssh-ed25519", blob)


def line(principals: str, key: SshPublicKey, options: str = "") -> str:
    return f"{principals} {options} {key.openssh()} comment".replace("  ", " ")


KEY_A, KEY_B = fake_key(1), fake_key(2)
AT = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "patterns", "result"),
    [
        ("alice@x", "alice@x", 1),
        ("alice@x", "*@x", 1),
        ("alice@x", "?lice@x", 1),
        ("alice@x", "bob@x,alice@x", 1),
        ("alice@x", "*@x,!alice@x", -1),
        ("alice@x", "!alice@x,*@x", -1),
        ("alice@y", "*@x", 0),
        ("Alice@x", "alice@x", 0),
        ("alice@x.evil", "*@x", 0),
        ("a.b@x", "a?b@x", 1),
    ],
)
def test_pattern_lists(text, patterns, result):
    assert match_pattern_list(text, patterns) == result


def test_parses_options_comments_and_quotes():
    data = "\n".join(
        [
            "# comment",
            "",
            line('"alice@x,carol@x"', KEY_A, 'namespaces="mlaudit-edd,git",valid-after="20300101"'),
            line("bob@x", KEY_B, 'valid-before="203001011200Z"'),
        ]
    ).encode()
    first, second = parse_allowed_signers(data, "as")
    assert first.principals == "alice@x,carol@x"
    assert first.namespaces == "mlaudit-edd,git"
    assert first.line == 3
    assert second.valid_before == datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("cert-authority", "cert-authority lines are not supported"),
        ('cert-authority,namespaces="x"', "cert-authority lines are not supported"),
        ("namespaces=x", "needs a quoted value"),
        ('namespaces="a",namespaces="b"', "given twice"),
        ('valid-after="2030"', "is not YYYYMMDD"),
        ('valid-after="20300101",valid-before="20290101"', "valid-before is not after"),
        ("no-touch-required", "unknown option"),
    ],
)
def test_refused_lines_name_file_and_line(options, message):
    with pytest.raises(TrustError) as caught:
        parse_allowed_signers(("# x\n" + line("alice@x", KEY_A, options)).encode(), "trust/as")
    assert caught.value.user_message().startswith("trust/as: line 2: ")
    assert message in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "alice@x",
        "alice@x ssh-ed25519",
        "alice@x ssh-ed25519 !!notbase64",
        f"alice@x ecdsa-sha2-nistp256 {base64.b64encode(KEY_A.blob).decode()}",
    ],
)
def test_malformed_key_lines(text):
    with pytest.raises(TrustError):
        parse_allowed_signers(text.encode(), "as")


def entries(*lines: str):
    return parse_allowed_signers("\n".join(lines).encode(), "as")


def test_check_key_verdicts():
    signers = entries(
        line("alice@x", KEY_A, 'valid-after="20300101Z",valid-before="20301231Z"'),
        line("bob@x", KEY_B, 'namespaces="git"'),
    )
    assert check_key(signers, "alice@x", KEY_A, "mlaudit-edd", AT).verdict == "valid"
    assert check_key(signers, "alice@x", KEY_B, "mlaudit-edd", AT).verdict == "untrusted"
    assert check_key(signers, "mallory@x", KEY_A, "mlaudit-edd", AT).verdict == "untrusted"
    assert check_key(signers, "bob@x", KEY_B, "mlaudit-edd", AT).verdict == "wrong-namespace"
    early = datetime(2029, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert check_key(signers, "alice@x", KEY_A, "mlaudit-edd", early).verdict == "not-yet-valid"
    late = datetime(2030, 12, 31, 0, 0, 1, tzinfo=timezone.utc)
    assert check_key(signers, "alice@x", KEY_A, "mlaudit-edd", late).verdict == "expired"


def test_validity_bounds_are_inclusive_like_openssh():
    signers = entries(line("alice@x", KEY_A, 'valid-after="20300101Z",valid-before="20300102Z"'))
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    end = datetime(2030, 1, 2, 0, 0, 0, 999_999, tzinfo=timezone.utc)
    assert check_key(signers, "alice@x", KEY_A, "ns", start).allowed
    assert check_key(signers, "alice@x", KEY_A, "ns", end).allowed


def test_any_matching_line_may_allow():
    signers = entries(
        line("alice@x", KEY_A, 'namespaces="git"'),
        line("*@x,!bob@x", KEY_A),
    )
    assert check_key(signers, "alice@x", KEY_A, "mlaudit-edd", AT).allowed
    assert not check_key(signers, "bob@x", KEY_A, "mlaudit-edd", AT).allowed


def test_time_formats():
    assert parse_ssh_time("20300102Z") == datetime(2030, 1, 2, tzinfo=timezone.utc)
    assert parse_ssh_time("203001020304Z") == datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc)
    assert parse_ssh_time("20300102030405z") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert parse_ssh_time("20300102").tzinfo is not None  # local time, made explicit
    for bad in ("2030010", "20300102T", "203001020", "20301301Z"):
        with pytest.raises(ValueError):
            parse_ssh_time(bad)


def test_revoked_keys_file():
    data = f"# revoked\n{KEY_A.openssh()} old laptop\n\n".encode()
    assert parse_revoked_keys(data, "rk") == {KEY_A.blob}
    with pytest.raises(TrustError, match="line 1"):
        parse_revoked_keys(b"ssh-ed25519\n", "rk")
