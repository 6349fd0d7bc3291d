"""The independent checkers of the bundle's compliance exports (tests only).

- OSCAL: NIST's own assessment-results JSON Schema (tests/fixtures/oscal, see VERSION)
  through `jsonschema` with every format the schema uses actually checked.
- CycloneDX: cyclonedx-python-lib's strict JSON validator for 1.6.
- Hugging Face: huggingface_hub's ModelCard parser, offline, eval results required.

The OSCAL schema writes XML NCName tokens as `^(\\p{L}|_)(\\p{L}|\\p{N}|[.\\-_])*$`;
Python's `re` has no `\\p{..}`, so jsonschema would raise on the first token. Rather
than skip those patterns, each `\\p{L}` / `\\p{N}` is replaced by the exact character
class of Unicode's L* / N* categories built from `unicodedata`; any other `\\p` or
`\\P` form stops the test instead of passing unchecked.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "oscal"
OSCAL_SCHEMA = SCHEMA_DIR / "oscal_assessment-results_schema.json"
_PROPERTY = re.compile(r"\\[pP]\{([^}]*)\}")


@functools.cache
def _category_class(major: str) -> str:
    """A regex character class of every code point whose Unicode category starts `major`."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith(major):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return f"[{body}]"


def python_pattern(pattern: str) -> str:
    """The schema's ECMA-262 pattern for Python's `re`: `\\p{L}` and `\\p{N}` made explicit."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0)[1] == "P" or match.group(1) not in ("L", "N"):
            raise AssertionError(f"pattern uses {match.group(0)}, which this checker cannot map")
        return _category_class(match.group(1))

    return _PROPERTY.sub(replace, pattern)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(python_pattern(pattern))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _walk(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


@functools.cache
def oscal_validator() -> Any:
    from jsonschema import Draft7Validator, validators

    schema = json.loads(OSCAL_SCHEMA.read_text(encoding="utf-8"))
    checker = Draft7Validator.FORMAT_CHECKER
    unchecked = {f for f in _walk(schema, "format") if isinstance(f, str)} - set(checker.checkers)
    # jsonschema silently skips a format whose backend is not installed (rfc3339-validator
    # for date-time, rfc3986-validator for uri and uri-reference): refuse to pretend.
    assert not unchecked, f"formats the OSCAL schema uses that would go unchecked: {unchecked}"
    assert not list(_walk(schema, "patternProperties")), "patternProperties: map them too"
    oscal = validators.extend(Draft7Validator, {"pattern": _pattern})
    return oscal(schema, format_checker=checker)


def oscal_problems(document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in oscal_validator().iter_errors(document)
    ]


def cyclonedx_problems(text: str) -> list[str]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    return [str(e) for e in errors] if errors else []


def hf_card(text: str) -> Any:
    """The card as huggingface_hub parses it, offline; its model-index must parse too."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import ModelCard

    card = ModelCard(text)
    assert card.data.eval_results, "model-index did not parse into eval results"
    return card
