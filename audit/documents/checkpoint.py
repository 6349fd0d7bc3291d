"""checkpoint.json: the one reader (schema, then the checks a schema cannot state)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from audit.documents.json_io import parse_object, read_bytes

if TYPE_CHECKING:
    from audit.tracking.checkpoint import Checkpoint

SCHEMA = "checkpoint"


def parse_checkpoint_document(raw: bytes, source: str) -> Checkpoint:
    from audit._resources import check_schema
    from audit.tracking.checkpoint import parse_checkpoint

    document = parse_object(raw, source)
    # The hand-written checks first: their messages say what a checkpoint field is
    # ("must be a sha256 hex digest"); the schema then catches anything else.
    checkpoint = parse_checkpoint(document, source)
    check_schema(document, SCHEMA, source)
    return checkpoint


def read_checkpoint(path: Path) -> Checkpoint:
    return parse_checkpoint_document(read_bytes(path), str(path))
