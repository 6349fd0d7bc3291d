"""Ledger checkpoints: origin, size and Merkle root of an experiment's seals, optionally signed.

A checkpoint is published outside the server (PR report, audit bundle) so a later
rewrite of the database is caught by `mlaudit track verify`. The signed text is the
C2SP tlog-checkpoint body, `<origin>\\n<size>\\n<base64 root>\\n`, signed with
`ssh-keygen -Y sign -n mlaudit-checkpoint`, so plain ssh-keygen can check it too.

JSON layout (format `mlaudit.checkpoint/1`)::

    {"format", "origin", "experiment_id", "tracking_uri", "size", "root" (hex),
     "root_base64", "taken_at", "note" (the signed text),
     "signature": armored SSHSIG | null, "signer": "SHA256:..." | null,
     "timestamp": RFC 3161 token over the note (audit.tracking.timestamp) | absent,
     "leaves": [{"seq", "run_id", "sha256"}, ...],         # names runs in verify
     "records": {run_id: record-object} | absent}           # names fields in verify

`leaves` and `records` are optional evidence: each leaf is checked against the root
and each record against its leaf before verify uses them to name what changed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from audit.errors import SignatureError, ValidationFailed

CHECKPOINT_FORMAT = "mlaudit.checkpoint/1"
NAMESPACE = "mlaudit-checkpoint"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def origin_of(tracking_uri: str, experiment_id: str) -> str:
    """`<host[:port]>/experiments/<id>`: which log a checkpoint speaks for."""
    parts = urlsplit(tracking_uri)
    host = parts.netloc or parts.path or tracking_uri
    return f"{host}/experiments/{experiment_id}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    experiment_id: str
    size: int
    root: str
    tracking_uri: str = ""
    taken_at: str = ""
    signature: str | None = None
    signer: str | None = None
    leaves: list[dict[str, Any]] | None = None
    records: dict[str, Any] | None = field(default=None, repr=False)
    timestamp: dict[str, Any] | None = field(default=None, repr=False)

    def note(self) -> bytes:
        root64 = base64.b64encode(bytes.fromhex(self.root)).decode()
        return f"{self.origin}\n{self.size}\n{root64}\n".encode()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "origin": self.origin,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "size": self.size,
            "root": self.root,
            "root_base64": base64.b64encode(bytes.fromhex(self.root)).decode(),
            "taken_at": self.taken_at,
            "note": self.note().decode(),
            "signature": self.signature,
            "signer": self.signer,
        }
        if self.leaves is not None:
            data["leaves"] = self.leaves
        if self.records is not None:
            data["records"] = self.records
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        return data


def parse_checkpoint(document: Any, file: str) -> Checkpoint:
    """Check a checkpoint document; every problem is reported with its JSON pointer."""
    if not isinstance(document, Mapping):
        raise ValidationFailed(file, [("", "a checkpoint must be a JSON object")])
    problems: list[tuple[str, str]] = []
    for name in ("origin", "root"):
        if not isinstance(document.get(name), str):
            problems.append((f"/{name}", "must be a string"))
    size = document.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        problems.append(("/size", "must be a non-negative integer"))
    root = document.get("root")
    if isinstance(root, str) and not _HEX64.fullmatch(root):
        problems.append(("/root", "must be a sha256 hex digest (64 lowercase hex characters)"))
    signature = document.get("signature")
    if signature is not None and not isinstance(signature, str):
        problems.append(("/signature", "must be an armored SSH signature or null"))
    leaves = document.get("leaves")
    if leaves is not None:
        problems.extend(_leaf_problems(leaves))
    records = document.get("records")
    if records is not None and not isinstance(records, Mapping):
        problems.append(("/records", "must be an object of run id -> record"))
    timestamp = document.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, Mapping):
        problems.append(("/timestamp", "must be an RFC 3161 timestamp object"))
    if problems:
        raise ValidationFailed(file, problems)
    return Checkpoint(
        origin=str(document["origin"]),
        experiment_id=str(document.get("experiment_id") or ""),
        size=int(document["size"]),
        root=str(document["root"]),
        tracking_uri=str(document.get("tracking_uri") or ""),
        taken_at=str(document.get("taken_at") or ""),
        signature=signature,
        signer=document.get("signer"),
        leaves=list(leaves) if leaves is not None else None,
        records=dict(records) if records is not None else None,
        timestamp=dict(timestamp) if timestamp is not None else None,
    )


def _leaf_problems(leaves: Any) -> list[tuple[str, str]]:
    if not isinstance(leaves, list):
        return [("/leaves", "must be a list")]
    problems = []
    for index, leaf in enumerate(leaves):
        ok = (
            isinstance(leaf, Mapping)
            and leaf.get("seq") == index
            and isinstance(leaf.get("run_id"), str)
            and isinstance(leaf.get("sha256"), str)
            and _HEX64.fullmatch(leaf["sha256"])
        )
        if not ok:
            problems.append((f"/leaves/{index}", f"must be {{seq: {index}, run_id, sha256}}"))
    return problems


def load_checkpoint(path: Path) -> Checkpoint:
    """checkpoint.json through the one strict reader (audit.documents.read_checkpoint)."""
    from audit.documents import read_checkpoint

    return read_checkpoint(path)


def sign_checkpoint(checkpoint: Checkpoint, key_path: Path) -> Checkpoint:
    """Sign the checkpoint note with an SSH private key (namespace mlaudit-checkpoint)."""
    from audit.edd.sshsig import sign_with_ssh_keygen, verify_signature

    armored = sign_with_ssh_keygen(key_path, NAMESPACE, checkpoint.note())
    signer = verify_signature(armored, checkpoint.note(), NAMESPACE).fingerprint
    return replace(checkpoint, signature=armored.decode("ascii"), signer=signer)


def check_signature(checkpoint: Checkpoint) -> str:
    """Verify the signature over the note; returns the signer's key fingerprint.

    Whether that key may sign checkpoints is the reader's policy: the fingerprint is
    reported so it can be compared with the one published next to the checkpoint.
    """
    from audit.edd.sshsig import verify_signature

    if checkpoint.signature is None:
        raise SignatureError("checkpoint is not signed")
    try:
        key = verify_signature(checkpoint.signature.encode("ascii"), checkpoint.note(), NAMESPACE)
    except (ValueError, UnicodeEncodeError, binascii.Error) as error:
        raise SignatureError(f"checkpoint signature is malformed: {error}") from None
    if checkpoint.signer and checkpoint.signer != key.fingerprint:
        raise SignatureError(
            f"checkpoint names signer {checkpoint.signer} but was signed by {key.fingerprint}"
        )
    return key.fingerprint


def timestamp_checkpoint(checkpoint: Checkpoint, tsa_url: str) -> Checkpoint:
    """Get an RFC 3161 token over the checkpoint's note from the TSA at `tsa_url`."""
    from audit.tracking.timestamp import request_timestamp

    token = request_timestamp(checkpoint.note(), tsa_url)
    return replace(checkpoint, timestamp=token.to_json())


def check_timestamp(checkpoint: Checkpoint, tsa_cert: Path) -> str:
    """Verify the checkpoint's token over its note against `tsa_cert`; the verified time."""
    from audit.errors import TimestampError
    from audit.tracking.timestamp import parse_timestamp, verify_timestamp

    if checkpoint.timestamp is None:
        raise TimestampError("the checkpoint carries no RFC 3161 timestamp")
    token = parse_timestamp(checkpoint.timestamp, "/timestamp")
    return verify_timestamp(token, checkpoint.note(), tsa_cert)
