"""Load an EDD file into an `Edd`: safe parse, schema, semantic checks, canonical bytes.

Never trusts the file: parsing goes through audit.edd.safe_yaml, and every
problem is reported at once as (JSON pointer, message) in a ValidationFailed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785

from audit._resources import load_schema
from audit.edd.model import Edd
from audit.edd.safe_yaml import Parsed, parse_yaml_file, pointer_of
from audit.edd.semantics import semantic_problems
from audit.errors import ValidationFailed

Problem = tuple[str, str]


def schema_problems(document: Any, schema_name: str) -> list[Problem]:
    """Every JSON Schema error as (pointer, message), in document order."""
    # jsonschema is imported here so commands that never validate stay fast.
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema(schema_name))
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    return [(pointer_of(e.absolute_path), _schema_message(e)) for e in errors]


def _schema_message(error: Any) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        return "unknown field(s): " + ", ".join(repr(k) for k in extra)
    return str(error.message)


def _with_lines(problems: list[Problem], parsed: Parsed) -> list[Problem]:
    result = []
    for pointer, message in problems:
        line = parsed.lines.get(pointer)
        result.append((pointer, f"{message} (line {line})" if line else message))
    return result


def load_edd(path: str | Path, *, at: datetime | None = None) -> Edd:
    """Parse and check an EDD; raise ValidationFailed listing every problem.

    With `at`, an EDD whose not_after is at or before that time is refused too.
    """
    file = Path(path)
    parsed = parse_yaml_file(file)
    document = parsed.value
    problems = schema_problems(document, "edd")
    if not problems:
        problems = semantic_problems(document, at=at)
    if problems:
        raise ValidationFailed(str(file), _with_lines(problems, parsed))
    return Edd(
        path=file, document=document, canonical=canonical_bytes(document), lines=parsed.lines
    )


def canonical_bytes(document: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON document: what approvers sign."""
    data: bytes = rfc8785.dumps(document)
    return data
