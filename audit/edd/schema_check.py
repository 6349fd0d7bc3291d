"""A small JSON Schema 2020-12 checker for mlaudit's own schemas.

`mlaudit edd verify` and the steps after the run execute on every pull request and
must start fast; importing the jsonschema package alone costs more than the rest of
a command. This checker covers exactly the keywords mlaudit's schemas (EDD, policy,
results, analysis, gate, checkpoint) use, with jsonschema's wording, and refuses a schema
that uses anything else (so a schema edit cannot silently go unchecked). Tests
compare it with jsonschema on the whole corpus and on generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator
from typing import Any

Problem = tuple[str, str]

# Keywords that only annotate: nothing to check.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "title", "description", "default", "format", "examples", "$comment"}
)
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}


def _token(key: str | int) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


class SchemaChecker:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.root = schema
        unknown = sorted(_keywords(schema) - _SUPPORTED)
        if unknown:
            raise ValueError(f"schema uses keywords this checker does not know: {unknown}")

    def problems(self, instance: Any) -> list[Problem]:
        return list(self._check(instance, self.root, ""))

    def _check(self, instance: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        if schema is True:
            return
        if schema is False:
            yield pointer, f"False schema does not allow {instance!r}"
            return
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS or keyword in ("$defs", "then", "else"):
                continue
            yield from getattr(self, "_" + _METHOD[keyword])(instance, value, schema, pointer)

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    # -- keywords ---------------------------------------------------------------

    def _ref(self, instance: Any, ref: str, schema: Any, pointer: str) -> Iterator[Problem]:
        yield from self._check(instance, self._resolve(ref), pointer)

    def _all_of(
        self, instance: Any, parts: list[Any], schema: Any, pointer: str
    ) -> Iterator[Problem]:
        for part in parts:
            yield from self._check(instance, part, pointer)

    def _if(self, instance: Any, condition: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        branch = "then" if not any(self._check(instance, condition, pointer)) else "else"
        if branch in schema:
            yield from self._check(instance, schema[branch], pointer)

    def _type(self, instance: Any, expected: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES[name](instance) for name in names):
            yield pointer, f"{instance!r} is not of type {', '.join(repr(n) for n in names)}"

    def _const(self, instance: Any, value: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        if not _equal(instance, value):
            yield pointer, f"{value!r} was expected"

    def _enum(
        self, instance: Any, values: list[Any], schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if not any(_equal(instance, value) for value in values):
            yield pointer, f"{instance!r} is not one of {values!r}"

    def _properties(
        self, instance: Any, properties: Any, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if not isinstance(instance, dict):
            return
        for name, subschema in properties.items():
            if name in instance:
                yield from self._check(instance[name], subschema, f"{pointer}/{_token(name)}")

    def _additional(
        self, instance: Any, extra: Any, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if not isinstance(instance, dict):
            return
        declared = schema.get("properties", {})
        for name, value in instance.items():
            if name in declared:
                continue
            if extra is False:
                yield f"{pointer}/{_token(name)}", "unknown field"
            else:
                yield from self._check(value, extra, f"{pointer}/{_token(name)}")

    def _property_names(
        self, instance: Any, names: Any, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if isinstance(instance, dict):
            for name in instance:
                yield from self._check(name, names, pointer)

    def _required(
        self, instance: Any, names: list[str], schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if isinstance(instance, dict):
            for name in names:
                if name not in instance:
                    yield pointer, f"{name!r} is a required property"

    def _items(self, instance: Any, items: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        if isinstance(instance, list):
            for index, item in enumerate(instance):
                yield from self._check(item, items, f"{pointer}/{index}")

    def _min_items(self, instance: Any, limit: int, schema: Any, pointer: str) -> Iterator[Problem]:
        if isinstance(instance, list) and len(instance) < limit:
            yield pointer, _too_short(instance, limit)

    def _max_items(self, instance: Any, limit: int, schema: Any, pointer: str) -> Iterator[Problem]:
        if isinstance(instance, list) and len(instance) > limit:
            yield pointer, _too_long(instance, limit)

    def _unique(self, instance: Any, unique: bool, schema: Any, pointer: str) -> Iterator[Problem]:
        # Linear, by hashing: an EDD's seeds or a results document's trials are lists of
        # hundreds, and comparing every pair cost a 200-seed EDD 20,000 comparisons.
        if unique and isinstance(instance, list):
            try:
                keys = [_equality_key(item) for item in instance]
                repeated = len(set(keys)) < len(keys)
            except TypeError:  # a value no JSON or YAML reader makes: compare pairwise
                repeated = any(
                    _equal(item, other) for i, item in enumerate(instance) for other in instance[:i]
                )
            if repeated:
                yield pointer, f"{instance!r} has non-unique elements"

    def _min_length(
        self, instance: Any, limit: int, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if isinstance(instance, str) and len(instance) < limit:
            yield pointer, _too_short(instance, limit)

    def _max_length(
        self, instance: Any, limit: int, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if isinstance(instance, str) and len(instance) > limit:
            yield pointer, _too_long(instance, limit)

    def _pattern(self, instance: Any, pattern: str, schema: Any, pointer: str) -> Iterator[Problem]:
        if isinstance(instance, str) and not re.search(pattern, instance):
            yield pointer, f"{instance!r} does not match {pattern!r}"

    def _minimum(self, instance: Any, limit: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        if _TYPES["number"](instance) and instance < limit:
            yield pointer, f"{instance!r} is less than the minimum of {limit!r}"

    def _maximum(self, instance: Any, limit: Any, schema: Any, pointer: str) -> Iterator[Problem]:
        if _TYPES["number"](instance) and instance > limit:
            yield pointer, f"{instance!r} is greater than the maximum of {limit!r}"

    def _exclusive_minimum(
        self, instance: Any, limit: Any, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if _TYPES["number"](instance) and instance <= limit:
            yield pointer, f"{instance!r} is less than or equal to the minimum of {limit!r}"

    def _exclusive_maximum(
        self, instance: Any, limit: Any, schema: Any, pointer: str
    ) -> Iterator[Problem]:
        if _TYPES["number"](instance) and instance >= limit:
            yield pointer, f"{instance!r} is greater than or equal to the maximum of {limit!r}"


_METHOD = {
    "$ref": "ref",
    "allOf": "all_of",
    "if": "if",
    "type": "type",
    "const": "const",
    "enum": "enum",
    "properties": "properties",
    "additionalProperties": "additional",
    "propertyNames": "property_names",
    "required": "required",
    "items": "items",
    "minItems": "min_items",
    "maxItems": "max_items",
    "uniqueItems": "unique",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
}
_SUPPORTED = frozenset(_METHOD) | _ANNOTATIONS | {"$defs", "then", "else"}


def _too_short(instance: Any, limit: int) -> str:
    return f"{instance!r} should be non-empty" if limit == 1 else f"{instance!r} is too short"


def _too_long(instance: Any, limit: int) -> str:
    return f"{instance!r} is expected to be empty" if limit == 0 else f"{instance!r} is too long"


def _equality_key(value: Any) -> Hashable:
    """A hashable stand-in equal for two values exactly when `_equal` says they are."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        # 1 and 1.0 are one JSON number (and hash alike); NaN equals nothing, itself included.
        return object() if value != value else ("number", value)
    if isinstance(value, dict):
        return ("object", frozenset((key, _equality_key(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_equality_key(item) for item in value))
    # Strings, null and anything else: equal only to the same type and value.
    return (type(value), value)


def _equal(one: Any, two: Any) -> bool:
    """JSON equality: true is not 1, and containers compare element-wise."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one is two
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if _TYPES["number"](one) and _TYPES["number"](two):
        return bool(one == two)
    return type(one) is type(two) and bool(one == two)


def _keywords(schema: Any) -> set[str]:
    """Every keyword used anywhere in a schema (not the property names it declares)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for keyword, value in schema.items():
            found.add(keyword)
            if keyword in ("properties", "$defs"):
                for subschema in value.values():
                    found |= _keywords(subschema)
            elif keyword in ("allOf", "anyOf", "oneOf", "prefixItems"):
                for subschema in value:
                    found |= _keywords(subschema)
            elif keyword in (
                "items",
                "additionalProperties",
                "propertyNames",
                "if",
                "then",
                "else",
                "not",
            ):
                found |= _keywords(value)
    return found
