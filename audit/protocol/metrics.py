"""Read a trial's metrics file (DVC metrics format) into flat, finite numbers.

Nested objects are flattened with '.'; anything that is not a finite number
(NaN, Infinity, strings, booleans, lists) makes the trial fail with the key named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class MetricsReading:
    metrics: dict[str, float] | None
    problem: str | None


def printable(text: str, limit: int = 200) -> str:
    """Untrusted text (metric keys, stderr) made safe for a terminal or log: no control chars."""
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


class _BadConstant(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _BadConstant(name)


def _parse(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_load(text)
    return json.loads(text, parse_constant=_refuse_constant)


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


def read_metrics(path: Path, required: Sequence[str] = ()) -> MetricsReading:
    """Flat metrics of `path`, or the reason they cannot be used."""
    if not path.is_file():
        return MetricsReading(None, f"the trial wrote no {path.name}")
    try:
        document = _parse(path)
    except _BadConstant as constant:
        return MetricsReading(None, f"{path.name}: {constant} is not a finite number")
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as error:
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
    return MetricsReading(flat, None)
