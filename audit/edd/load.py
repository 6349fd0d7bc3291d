"""Load an EDD file into an `Edd`: safe parse, schema, semantic checks, canonical bytes.

Never trusts the file: parsing goes through audit.edd.safe_yaml, and every
problem is reported at once as (JSON pointer, message) in a ValidationFailed.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785

from audit._resources import load_schema
from audit.edd.model import Edd
from audit.edd.safe_yaml import Parsed, parse_yaml_bytes, read_limited
from audit.edd.schema_check import SchemaChecker
from audit.edd.semantics import semantic_problems
from audit.errors import ValidationFailed

Problem = tuple[str, str]


def schema_problems(document: Any, schema_name: str) -> list[Problem]:
    """Every JSON Schema error as (pointer, message).

    Uses audit.edd.schema_check rather than jsonschema: same wording, a fraction
    of the start-up time (tests keep the two in agreement).
    """
    return _checker(schema_name).problems(document)


@functools.cache
def _checker(schema_name: str) -> SchemaChecker:
    return SchemaChecker(load_schema(schema_name))


def _with_lines(problems: list[Problem], parsed: Parsed) -> list[Problem]:
    """Add the YAML line to each problem and list them in file order."""
    located = [(parsed.lines.get(pointer, 0), pointer, message) for pointer, message in problems]
    return [
        (pointer, f"{message} (line {line})" if line else message)
        for line, pointer, message in sorted(located, key=lambda item: (item[0], item[1]))
    ]


def load_edd(path: str | Path, *, at: datetime | None = None) -> Edd:
    """Parse and check an EDD; raise ValidationFailed listing every problem.

    With `at`, an EDD whose not_after is at or before that time is refused too.
    """
    file = Path(path)
    raw = read_limited(file)
    parsed = parse_yaml_bytes(raw, str(file))
    document = parsed.value
    problems = schema_problems(document, "edd")
    if not problems:
        problems = semantic_problems(document, at=at)
    if problems:
        raise ValidationFailed(str(file), _with_lines(problems, parsed))
    return Edd(
        path=file,
        document=document,
        canonical=canonical_bytes(document),
        lines=parsed.lines,
        raw=raw,
    )


def canonical_bytes(document: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON document: what approvers sign."""
    data: bytes = rfc8785.dumps(document)
    return data
