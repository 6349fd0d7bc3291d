"""Read a trial's metrics file (DVC metrics format) into flat, finite numbers.

Nested objects are flattened with '.'; anything that is not a finite number
(NaN, Infinity, strings, booleans, lists) makes the trial fail with the key named.

The file is written by the trial, which is untrusted code: it must never take
the study down. Size, nesting depth and number length are bounded before or
while parsing, duplicate keys are refused, and a symbolic link (or a path that
leaves the trial directory) is refused rather than followed. Every problem is a
reason for that one trial to fail, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.errors import ValidationFailed

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
# Longest number literal accepted: 10^308 (the float range) has 309 digits.
MAX_NUMBER_CHARS = 320
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class MetricsReading:
    metrics: dict[str, float] | None
    problem: str | None
    sha256: str | None = None  # of the bytes the metrics were parsed from


def printable(text: str, limit: int = 200) -> str:
    """Untrusted text (metric keys, stderr) made safe for a terminal or log: no control chars."""
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class _Unusable(ValueError):
    """The file cannot be used; the message is the whole reason (after the file name)."""


def _refuse_constant(name: str) -> float:
    raise _Unusable(f"{name} is not a finite number")


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Unusable(f"a number of {len(text)} characters is out of range")
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise _Unusable(f"the number {printable(text, 40)} is out of range") from None
    return value


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Unusable(f"a number of {len(text)} characters is out of range")
    return float(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Unusable(f"duplicate key '{printable(key, 120)}'")
        result[key] = value
    return result


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json.loads recurses into it."""
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise _Unusable(f"nesting deeper than {MAX_DEPTH} levels")


def _parse_json(data: bytes) -> Any:
    text = data.decode("utf-8")
    _check_depth(text)
    return json.loads(
        text,
        parse_constant=_refuse_constant,
        parse_int=_bounded_int,
        parse_float=_bounded_float,
        object_pairs_hook=_unique_keys,
    )


def _parse_yaml(data: bytes, name: str) -> Any:
    # The same hostile-input reader as the EDD: no aliases, depth and size bounded.
    # Imported here: audit.edd is a package of its own, which a Ray worker reading
    # JSON metrics never needs to load.
    from audit.edd.safe_yaml import parse_yaml_bytes

    try:
        return parse_yaml_bytes(data, name).value
    except ValidationFailed as failed:
        pointer, message = failed.problems[0]
        raise _Unusable(f"not valid YAML: {pointer or '/'}: {message}") from None


def _read_bounded(path: Path, within: Path | None) -> bytes:
    """The file's bytes, if it is a regular file inside `within` and not too big."""
    if path.is_symlink():
        raise _Unusable("a symbolic link is refused; the trial must write a regular file")
    if within is not None and not path.resolve().is_relative_to(within.resolve()):
        raise _Unusable(f"the path leaves the trial directory {within}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise _Unusable(f"unreadable ({error.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise _Unusable("not a regular file")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _Unusable(f"larger than {MAX_BYTES} bytes")
    return data


def _parse(path: Path, within: Path | None) -> tuple[Any, bytes]:
    data = _read_bounded(path, within)
    if path.suffix.lower() in (".yaml", ".yml"):
        return _parse_yaml(data, path.name), data
    return _parse_json(data), data


def _flatten(value: Mapping[str, Any], prefix: str, out: dict[str, float]) -> str | None:
    for key, item in value.items():
        dotted = f"{prefix}{key}"
        shown = printable(dotted, 120)
        if isinstance(item, Mapping):
            problem = _flatten(item, dotted + ".", out)
            if problem:
                return problem
        elif isinstance(item, bool) or not isinstance(item, (int, float)):
            return f"metric '{shown}' is not a number ({type(item).__name__})"
        elif not math.isfinite(item):
            return f"metric '{shown}' is not finite ({item})"
        else:
            out[dotted] = float(item)
    return None


def read_metrics(
    path: Path, required: Sequence[str] = (), *, within: Path | None = None
) -> MetricsReading:
    """Flat metrics of `path`, or the reason they cannot be used.

    `within` is the trial directory the file must stay inside (symlinks are
    refused everywhere). Never raises: whatever the trial wrote, the answer is
    a reading or a reason.
    """
    if not path.exists() and not path.is_symlink():
        return MetricsReading(None, f"the trial wrote no {path.name}")
    try:
        document, data = _parse(path, within)
    except _Unusable as unusable:
        return MetricsReading(None, f"{printable(path.name)}: {printable(str(unusable), 300)}")
    except (ValueError, UnicodeDecodeError, RecursionError, MemoryError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        return MetricsReading(None, f"{path.name} is not valid: {printable(first)}")
    if not isinstance(document, Mapping):
        return MetricsReading(None, f"{path.name} must hold an object of metrics")
    flat: dict[str, float] = {}
    problem = _flatten(document, "", flat)
    if problem:
        return MetricsReading(None, f"{path.name}: {problem}")
    absent = [name for name in required if name not in flat]
    if absent:
        return MetricsReading(None, f"{path.name} lacks the metric '{absent[0]}'")
    # The digest of the very bytes parsed: no second read that could see other bytes.
    return MetricsReading(flat, None, hashlib.sha256(data).hexdigest())
