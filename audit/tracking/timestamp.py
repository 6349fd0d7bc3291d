"""RFC 3161 trusted timestamps over a checkpoint's note, through `openssl ts`.

A checkpoint is only as trustworthy as whoever controls the database; a timestamp
from a time-stamping authority (TSA) proves the log had this size and root no later
than the TSA's time. Requests, replies and verification all go through the
`openssl ts` command (argv lists, never a shell): no ASN.1 is hand-written here, and
an auditor checks the same token with the same command:

    openssl ts -verify -data note -in token.der -token_in -CAfile tsa.pem

Verification is offline against the certificate the verifier gives (a CA or the TSA
certificate itself, hence `-partial_chain`), judged at the token's own time
(`-attime`), so a TSA certificate that expired later does not void old timestamps.
The token's JSON layout inside checkpoint.json (key `timestamp`)::

    {"format": "rfc3161", "tsa": URL, "hash": "sha256", "token": base64 DER TimeStampToken,
     "gen_time": "YYYY-MM-DDTHH:MM:SSZ"}           # gen_time is informational; the token rules
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from audit.errors import InputError, TimestampError, TrackingError

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
MAX_REPLY_BYTES = 1024 * 1024
_TIME_LINE = re.compile(
    r"^Time stamp: (\w{3}) +(\d+) (\d\d:\d\d:\d\d)(?:\.\d+)? (\d{4}) GMT$", re.M
)


@dataclass(frozen=True)
class Timestamp:
    tsa: str
    token: bytes
    gen_time: str

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "rfc3161",
            "tsa": self.tsa,
            "hash": "sha256",
            "token": base64.b64encode(self.token).decode("ascii"),
            "gen_time": self.gen_time,
        }


def parse_timestamp(document: Any, where: str) -> Timestamp:
    """The `timestamp` object of a checkpoint; the token's bytes, not its claims, are kept."""
    if not isinstance(document, Mapping) or document.get("format") != "rfc3161":
        raise TimestampError(f"{where}: not an RFC 3161 timestamp object")
    try:
        token = base64.b64decode(str(document["token"]), validate=True)
    except (KeyError, binascii.Error) as error:
        raise TimestampError(f"{where}/token: not base64 DER: {error}") from None
    return Timestamp(str(document.get("tsa") or ""), token, str(document.get("gen_time") or ""))


def request_timestamp(data: bytes, tsa_url: str, *, timeout: float = 30.0) -> Timestamp:
    """Ask the TSA at `tsa_url` for a token over sha256(data); the reply must be granted."""
    import requests

    with tempfile.TemporaryDirectory(prefix="mlaudit-tsa-") as tmp:
        folder = Path(tmp)
        (folder / "data").write_bytes(data)
        query = folder / "request.tsq"
        _openssl("-query", "-data", folder / "data", "-sha256", "-cert", "-out", query)
        try:
            answer = requests.post(
                tsa_url,
                data=query.read_bytes(),
                headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE},
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise TrackingError(f"timestamp authority {tsa_url} unreachable: {error}") from None
        if answer.status_code != 200 or len(answer.content) > MAX_REPLY_BYTES:
            raise TrackingError(f"timestamp authority {tsa_url} answered HTTP {answer.status_code}")
        reply = folder / "reply.tsr"
        reply.write_bytes(answer.content)
        # The nonce and the imprint of this very request must be in the reply.
        token = folder / "token.der"
        _openssl("-reply", "-in", reply, "-token_out", "-out", token, what="reply refused")
        _check_reply_matches(folder, query, reply)
        raw = token.read_bytes()
    return Timestamp(tsa_url, raw, token_time(raw))


def _check_reply_matches(folder: Path, query: Path, reply: Path) -> None:
    """The reply answers this request (imprint and nonce): `openssl ts -reply -text` of both."""
    asked = _openssl("-query", "-in", query, "-text")
    answered = _openssl("-reply", "-in", reply, "-text")
    for label in ("Message data:", "Nonce:"):
        if _field(asked, label) != _field(answered, label):
            raise TimestampError(f"the timestamp reply does not answer the request ({label})")


def _field(text: str, label: str) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(label):
            rest = [line.split(label, 1)[1].strip()]
            rest += [
                item.strip() for item in lines[index + 1 : index + 3] if item.startswith("    0")
            ]
            return " ".join(rest)
    return ""


def token_time(token: bytes) -> str:
    """The token's genTime as RFC 3339 UTC, read by `openssl ts -reply -token_in -text`."""
    with tempfile.TemporaryDirectory(prefix="mlaudit-tsa-") as tmp:
        path = Path(tmp) / "token.der"
        path.write_bytes(token)
        text = _openssl("-reply", "-in", path, "-token_in", "-text", what="not a timestamp token")
    match = _TIME_LINE.search(text)
    if match is None:
        raise TimestampError("the timestamp token has no readable time")
    month, day, clock, year = match.groups()
    moment = datetime.strptime(f"{month} {day} {year} {clock}", "%b %d %Y %H:%M:%S")
    return moment.replace(tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_timestamp(timestamp: Timestamp, data: bytes, tsa_cert: Path) -> str:
    """Check the token covers sha256(data) and was signed by a TSA `tsa_cert` vouches for.

    Returns the verified genTime. Offline: only the token, the data and the certificate.
    """
    gen_time = token_time(timestamp.token)
    epoch = int(datetime.fromisoformat(gen_time.replace("Z", "+00:00")).timestamp())
    with tempfile.TemporaryDirectory(prefix="mlaudit-tsa-") as tmp:
        folder = Path(tmp)
        (folder / "data").write_bytes(data)
        (folder / "token.der").write_bytes(timestamp.token)
        # A copy under a plain name: openssl reads some file options as lists.
        trusted = folder / "trusted.pem"
        try:
            trusted.write_bytes(tsa_cert.read_bytes())
        except OSError as error:
            raise InputError(f"cannot read {tsa_cert}: {error.strerror}") from None
        _openssl(
            "-verify",
            "-data",
            folder / "data",
            "-in",
            folder / "token.der",
            "-token_in",
            "-CAfile",
            trusted,
            "-untrusted",
            trusted,
            "-partial_chain",
            "-attime",
            str(epoch),
            what="timestamp does not verify",
        )
    return gen_time


def _openssl(*args: str | Path, what: str = "openssl ts failed") -> str:
    program = shutil.which("openssl")
    if program is None:
        raise InputError("openssl not found on PATH: it is needed for RFC 3161 timestamps")
    # Paths are absolute temp files or the user's certificate; anchor a relative one
    # so a name starting with '-' cannot read as an option.
    argv = [program, "ts", *(_argument(a) for a in args)]
    process = subprocess.run(argv, capture_output=True, check=False, timeout=60)
    if process.returncode != 0:
        detail = process.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = next((line for line in reversed(detail) if "error" in line), "")
        raise TimestampError(f"{what}: {_short(reason) or f'exit status {process.returncode}'}")
    return process.stdout.decode("utf-8", "replace")


def _argument(value: str | Path) -> str:
    if isinstance(value, Path):
        return str(value) if value.is_absolute() else os.path.join(".", str(value))
    return value


def _short(line: str) -> str:
    """The reason part of an OpenSSL error line (`...:reason:file:line:detail`)."""
    parts = line.split(":")
    text = ":".join(parts[5:6] + parts[8:]) if len(parts) > 8 else line
    return text.strip().rstrip(":")
