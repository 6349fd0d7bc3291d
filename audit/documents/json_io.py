"""The one strict JSON reader and the one atomic JSON writer of mlaudit's documents.

The reader refuses what an audit trail must never let through: duplicate keys
(two readers could pick different values), NaN and Infinity (and numbers that
overflow to them), text that is not UTF-8, and nesting deeper than any mlaudit
document needs. Each refusal names the file and the JSON pointer. The writer
never leaves half a file: temp file in the same folder, fsync, rename.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audit.errors import InputError, Location, ValidationFailed, pointer_of

# Deeper than any document mlaudit writes (an EDD inside results.json is ~10 levels).
MAX_DEPTH = 64
# How many problems one refusal lists; a hostile file could otherwise produce millions.
_MAX_PROBLEMS = 20
FILE_MODE = 0o644


class _Duplicates(dict[str, Any]):
    """An object whose source repeated a key; the walk below turns it into a refusal."""

    repeated: tuple[str, ...] = ()


class _NonFinite:
    """Where the source had NaN, Infinity or a number too large for a double."""

    def __init__(self, text: str) -> None:
        self.text = text


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    repeated: list[str] = []
    for key, value in pairs:
        if key in data:
            repeated.append(key)
        data[key] = value
    if not repeated:
        return data
    marked = _Duplicates(data)
    marked.repeated = tuple(repeated)
    return marked


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def parse_json(raw: bytes, file: str) -> Any:
    """Parse `raw` strictly; InputError / ValidationFailed (exit 1) name `file` and a pointer."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text (byte {error.start})", location=Location(file)) from None
    try:
        value = json.loads(
            text, object_pairs_hook=_object, parse_constant=_NonFinite, parse_float=_float
        )
    except json.JSONDecodeError as error:
        raise InputError(
            f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})",
            location=Location(file),
        ) from None
    except RecursionError:
        raise InputError(
            f"nested deeper than {MAX_DEPTH} levels", location=Location(file)
        ) from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise InputError(f"not valid JSON: {error}", location=Location(file)) from None
    problems: list[tuple[str, str]] = []
    clean = _clean(value, [], problems)
    if problems:
        raise ValidationFailed(file, problems[:_MAX_PROBLEMS])
    return clean


def _clean(value: Any, path: list[str | int], problems: list[tuple[str, str]]) -> Any:
    """Plain JSON values again, collecting every duplicate key, non-number and over-deep spot."""
    if len(path) > MAX_DEPTH:
        problems.append((pointer_of(path), f"nested deeper than {MAX_DEPTH} levels"))
        return None
    if isinstance(value, _NonFinite):
        problems.append((pointer_of(path), f"{value.text} is not a finite JSON number"))
        return None
    if isinstance(value, dict):
        for key in getattr(value, "repeated", ()):
            problems.append((pointer_of([*path, key]), f"duplicate key {key!r}"))
        return {key: _clean(item, [*path, key], problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item, [*path, index], problems) for index, item in enumerate(value)]
    return value


def read_bytes(path: Path) -> bytes:
    """A file's exact bytes ('-' is standard input), or an InputError naming it."""
    import sys

    from audit.errors import unreadable_input

    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as error:  # missing: usage error 2; unreadable: input error 1
        raise unreadable_input(error, str(path)) from None


def parse_object(raw: bytes, file: str, schema: str | None = None) -> dict[str, Any]:
    """A strict JSON object, checked against `schemas/<schema>.schema.json` when named."""
    from audit._resources import check_schema

    value = parse_json(raw, file)
    if not isinstance(value, dict):
        raise ValidationFailed(file, [("", "must be a JSON object")])
    if schema is not None:
        check_schema(value, schema, file)
    return value


def dumps(document: Mapping[str, Any]) -> bytes:
    """The one serialisation of a written document: sorted keys, 2 spaces, trailing newline."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_document(path: Path, document: Mapping[str, Any], schema: str | None = None) -> bytes:
    """Write atomically: a reader (or a killed writer) sees the old file, the new one, or none.

    With `schema`, a document that breaks it is refused before anything is written:
    mlaudit never writes what its own reader would reject. Returns the bytes written.
    """
    from audit._resources import check_schema

    if schema is not None:
        check_schema(document, schema, str(path))
    data = dumps(document)
    write_bytes_atomically(path, data)
    return data


def write_bytes_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror}", location=Location(str(path))) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise InputError(
                f"cannot write: {error.strerror}", location=Location(str(path))
            ) from None
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot open a folder, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
