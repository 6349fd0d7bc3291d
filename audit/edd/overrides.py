"""A deliberately small reading of Hydra `key=value` overrides, for EDD validation.

The protocol engine does the full Hydra parse; this module only needs the key
(to check it exists in the baseline) and a best-effort scalar value (to spot
overrides that change nothing). It refuses what would make an arm differ from
the baseline in ways the EDD does not declare: sweeps and the `+`, `++`, `~`
prefixes that add or delete keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")
_SWEEP_FUNCTIONS = re.compile(r"\b(?:choice|range|interval|glob|tag|shuffle|sort)\s*\(")
_NO_VALUE = object()


class OverrideSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Override:
    key: str
    value_text: str

    @property
    def path(self) -> list[str]:
        return self.key.split(".")

    def scalar(self) -> Any:
        """The value as Hydra would type a plain scalar, or _NO_VALUE when unsure."""
        return _plain_scalar(self.value_text)


def parse_override(text: str) -> Override:
    if text.startswith(("+", "~")):
        raise OverrideSyntaxError(
            f"override {text!r}: the prefixes '+', '++' and '~' add or delete keys; "
            "an arm may only change keys that exist in the baseline"
        )
    key, sep, value = text.partition("=")
    if not sep:
        raise OverrideSyntaxError(f"override {text!r} is not of the form key=value")
    if not _KEY.match(key):
        raise OverrideSyntaxError(f"override {text!r}: {key!r} is not a dotted config key")
    if _has_top_level_comma(value) or _SWEEP_FUNCTIONS.search(value):
        raise OverrideSyntaxError(f"override {text!r} is a sweep; an arm takes one value per key")
    return Override(key=key, value_text=value)


def _has_top_level_comma(value: str) -> bool:
    depth = 0
    quote = ""
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


def _plain_scalar(text: str) -> Any:
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if re.fullmatch(r"[-+]?[0-9]+", stripped):
        return int(stripped)
    if re.fullmatch(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", stripped):
        return float(stripped)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", stripped):
        return stripped
    return _NO_VALUE


def baseline_value(baseline: Any, path: list[str]) -> Any:
    """The baseline's value at a dotted path, or _NO_VALUE when the key is missing."""
    node = baseline
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _NO_VALUE
    return node


def is_missing(value: Any) -> bool:
    return value is _NO_VALUE
