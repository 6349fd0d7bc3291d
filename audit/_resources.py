"""Locate the JSON Schemas that ship with mlaudit and check documents against them.

Reading JSON files is audit.documents' job (one strict reader).

In a wheel they sit inside the package (audit/schemas); in a source checkout or
an editable install they are the top-level schemas/ folder users also read.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def schemas_dir() -> Path:
    for candidate in (_PACKAGE_DIR / "schemas", _PACKAGE_DIR.parent / "schemas"):
        if (candidate / "edd.schema.json").is_file():
            return candidate
    raise FileNotFoundError("mlaudit's JSON Schemas are missing from this installation")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load `schemas/<name>.schema.json` (e.g. name="edd")."""
    path = schemas_dir() / f"{name}.schema.json"
    with path.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def schema_problems(document: Any, name: str, prefix: str = "") -> list[tuple[str, str]]:
    """Every (JSON pointer, message) where `document` breaks `schemas/<name>.schema.json`."""
    from jsonschema import Draft202012Validator

    from audit.errors import pointer_of

    validator = Draft202012Validator(load_schema(name))
    return [
        (prefix + pointer_of(error.absolute_path), error.message)
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


# Schemas whose documents audit.edd.schema_check may pass without jsonschema: tests
# (tests/unit/edd/test_schema_check.py) hold it to jsonschema's verdict on them. Importing
# jsonschema costs more than checking the documents: it saves `ablate run` (results) and
# the steps after the run that read analysis, gate and checkpoint documents (~50 ms each).
_FAST_CHECKED = frozenset({"results", "analysis", "gate", "checkpoint"})


@functools.cache
def _fast_checker(name: str) -> Any:
    from audit.edd.schema_check import SchemaChecker

    return SchemaChecker(load_schema(name))


def check_schema(document: Any, name: str, file: str) -> None:
    """Raise ValidationFailed listing every schema problem of `document` at once."""
    from audit.errors import ValidationFailed

    if name in _FAST_CHECKED and not _fast_checker(name).problems(document):
        return
    # jsonschema has the last word, and words the problems as everywhere else.
    problems = schema_problems(document, name)
    if problems:
        raise ValidationFailed(file, problems)
