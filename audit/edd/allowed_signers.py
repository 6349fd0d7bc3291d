"""OpenSSH allowed_signers files and revoked-key lists, with `ssh-keygen -Y verify` semantics.

Principal patterns (`*`, `?`, `!negation`, comma lists), `namespaces=`,
`valid-after=` / `valid-before=` are honoured as OpenSSH does. `cert-authority`
lines are refused: mlaudit verifies plain keys only, and silently skipping a CA
line would make mlaudit and ssh-keygen disagree. Unlike ssh-keygen, any malformed
line fails the whole file: a trust root is either right or unusable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from audit.edd.sshsig import SshPublicKey
from audit.errors import Location, TrustError

_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?([Zz]?)$")
_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')


@dataclass(frozen=True)
class SignerEntry:
    line: int
    principals: str
    key: SshPublicKey
    namespaces: str | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None


@dataclass(frozen=True)
class KeyCheck:
    """Whether a key may sign for a principal at a time, and why not."""

    allowed: bool
    verdict: str
    reason: str


def match_pattern(text: str, pattern: str) -> bool:
    """OpenSSH match_pattern: `*` and `?` wildcards, case-sensitive, whole string.

    Matched by hand in O(len(text) * len(pattern)) with the classic backtrack-to-
    last-star walk: a regex of many `.*` would backtrack polynomially on a
    hostile principal.
    """
    t = p = 0
    star = -1  # position in pattern just after the last `*` seen
    resume = 0  # position in text that `*` currently stands up to
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and (pattern[p] == "?" or pattern[p] == text[t]):
            t, p = t + 1, p + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume = p + 1, t
            p += 1
        elif star >= 0:
            resume += 1
            t, p = resume, star
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def match_pattern_list(text: str, patterns: str) -> int:
    """OpenSSH match_pattern_list: -1 if a negated pattern matches, 1 if a plain one does."""
    matched = 0
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if match_pattern(text, pattern[1:] if negated else pattern):
            if negated:
                return -1
            matched = 1
    return matched


def matches(text: str, patterns: str) -> bool:
    return match_pattern_list(text, patterns) == 1


def parse_ssh_time(text: str) -> datetime:
    """YYYYMMDD[HHMM[SS]][Z] as OpenSSH reads it: UTC with Z, local time without."""
    found = _TIME.match(text)
    if not found:
        raise ValueError(f"{text!r} is not YYYYMMDD[HHMM[SS]][Z]")
    year, month, day, hour, minute, second, zulu = found.groups()
    try:
        naive = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
        return naive.replace(tzinfo=timezone.utc) if zulu else naive.astimezone()
    except (ValueError, OverflowError, OSError) as error:
        # 99991231 in a zone west of UTC overflows astimezone(): still the user's input.
        raise ValueError(f"{text!r} is not a valid time ({error})") from None


def _unquote(value: str, name: str) -> str:
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        raise ValueError(f'{name}= needs a quoted value, e.g. {name}="..."')
    return value[1:-1]


def _options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in re.findall(r'(?:"[^"]*"|[^,"])+', text):
        name, _, value = item.partition("=")
        if name == "cert-authority":
            raise ValueError(
                "cert-authority lines are not supported; list each approver's own public key"
            )
        if name not in ("namespaces", "valid-after", "valid-before"):
            raise ValueError(f"unknown option {name!r}")
        if name in options:
            raise ValueError(f"option {name!r} given twice")
        options[name] = _unquote(value, name)
    return options


def _entry(line_number: int, text: str) -> SignerEntry:
    tokens = _TOKEN.findall(text)
    if len(tokens) < 3:
        raise ValueError("expected: principals [options] keytype base64-key [comment]")
    principals = tokens[0].strip('"')
    options: dict[str, str] = {}
    rest = tokens[1:]
    if not _looks_like_key_type(rest[0]):
        options = _options(rest[0])
        rest = rest[1:]
    if len(rest) < 2:
        raise ValueError("missing public key")
    key = SshPublicKey.from_openssh(rest[0], rest[1])
    after = parse_ssh_time(options["valid-after"]) if "valid-after" in options else None
    before = parse_ssh_time(options["valid-before"]) if "valid-before" in options else None
    if after and before and before <= after:
        raise ValueError("valid-before is not after valid-after")
    return SignerEntry(line_number, principals, key, options.get("namespaces"), after, before)


def _looks_like_key_type(token: str) -> bool:
    return token.startswith(("ssh-", "ecdsa-", "sk-")) and "=" not in token


def parse_allowed_signers(data: bytes, source: str) -> list[SignerEntry]:
    """Every entry of an allowed_signers file; TrustError at `source:line` on any bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TrustError("allowed_signers is not UTF-8", location=Location(source)) from None
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(_entry(number, line))
        except ValueError as error:
            raise TrustError(f"line {number}: {error}", location=Location(source)) from None
    return entries


def parse_revoked_keys(data: bytes, source: str) -> set[bytes]:
    """Blobs of the keys listed one per line (`keytype base64 [comment]`) in a revoked file."""
    revoked: set[bytes] = set()
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        parts = raw.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if len(parts) < 2:
                raise ValueError("expected: keytype base64-key [comment]")
            revoked.add(SshPublicKey.from_openssh(parts[0], parts[1]).blob)
        except ValueError as error:
            raise TrustError(f"line {number}: {error}", location=Location(source)) from None
    return revoked


def keys_for(entries: list[SignerEntry], principal: str) -> set[bytes]:
    """Every key blob some line allows for `principal` (ignoring namespace and time)."""
    return {e.key.blob for e in entries if matches(principal, e.principals)}


def check_key(
    entries: list[SignerEntry],
    principal: str,
    key: SshPublicKey,
    namespace: str,
    at: datetime,
) -> KeyCheck:
    """May `key` sign as `principal` in `namespace` at time `at`? Like ssh-keygen -Y verify."""
    # ssh-keygen compares whole seconds.
    moment = at.replace(microsecond=0)
    for_principal = [e for e in entries if matches(principal, e.principals)]
    if not for_principal:
        return KeyCheck(False, "untrusted", f"principal {principal!r} is not in allowed_signers")
    with_key = [e for e in for_principal if e.key.blob == key.blob]
    if not with_key:
        return KeyCheck(False, "untrusted", f"key {key.fingerprint} is not allowed for {principal}")
    refusals = []
    for entry in with_key:
        refusal = _entry_refusal(entry, namespace, moment)
        if refusal is None:
            return KeyCheck(True, "valid", f"allowed_signers line {entry.line}")
        refusals.append(refusal)
    return refusals[0]


def _entry_refusal(entry: SignerEntry, namespace: str, at: datetime) -> KeyCheck | None:
    if entry.namespaces is not None and not matches(namespace, entry.namespaces):
        return KeyCheck(
            False, "wrong-namespace", f"line {entry.line} allows namespaces {entry.namespaces!r}"
        )
    if entry.valid_after is not None and at < entry.valid_after:
        return KeyCheck(False, "not-yet-valid", f"key valid after {entry.valid_after.isoformat()}")
    if entry.valid_before is not None and at > entry.valid_before:
        return KeyCheck(False, "expired", f"key expired at {entry.valid_before.isoformat()}")
    return None


__all__ = [
    "KeyCheck",
    "SignerEntry",
    "check_key",
    "keys_for",
    "match_pattern",
    "match_pattern_list",
    "matches",
    "parse_allowed_signers",
    "parse_revoked_keys",
    "parse_ssh_time",
]
