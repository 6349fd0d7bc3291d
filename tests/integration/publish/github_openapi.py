"""GitHub's official OpenAPI description (vendored subset) as request/response validators.

OpenAPI 3.0 schemas are not quite JSON Schema: `nullable: true` must become a
"null" type (and a None in an enum), and refs point into the whole document.
The converted document is registered once; each check validates against a
`$ref` into it, so component refs resolve as GitHub wrote them.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SUBSET = Path(__file__).resolve().parents[2] / "fixtures" / "openapi" / "github-subset.json"
BASE_URI = "urn:github-openapi"


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema Draft 4: nullable becomes an explicit null type."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*kinds, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


@functools.cache
def document() -> dict[str, Any]:
    converted: dict[str, Any] = _convert(json.loads(SUBSET.read_text(encoding="utf-8")))
    return converted


@functools.cache
def registry() -> Registry:
    resource = Resource(contents=document(), specification=DRAFT4)
    return Registry().with_resource(BASE_URI, resource)


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@dataclass(frozen=True)
class Operation:
    template: str
    method: str
    pattern: re.Pattern[str]

    @property
    def spec(self) -> dict[str, Any]:
        return document()["paths"][self.template][self.method]

    def parameters(self) -> list[dict[str, Any]]:
        shared = document()["paths"][self.template].get("parameters", [])
        return [_resolve(p) for p in [*shared, *self.spec.get("parameters", [])]]


@functools.cache
def operations() -> list[Operation]:
    ops = []
    for template, item in document()["paths"].items():
        regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template)) + "$"
        for method in item:
            if method != "parameters":
                ops.append(Operation(template, method, re.compile(regex)))
    return ops


def find_operation(method: str, path: str) -> Operation | None:
    for op in operations():
        if op.method == method.lower() and op.pattern.match(path):
            return op
    return None


def _errors(schema_pointer: str, instance: Any) -> list[str]:
    validator = Draft4Validator({"$ref": f"{BASE_URI}#/{schema_pointer}"}, registry=registry())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
        for e in validator.iter_errors(instance)
    ]


def _check_parameter(param: dict[str, Any], raw: str) -> list[str]:
    schema = param.get("schema", {})
    kind = schema.get("type")
    if kind == "integer":
        if not re.fullmatch(r"-?[0-9]+", raw):
            return [f"{param['in']} parameter {param['name']}={raw!r} is not an integer"]
        value: Any = int(raw)
    else:
        value = raw
    validator = Draft4Validator(_convert(schema), registry=registry())
    return [
        f"{param['in']} parameter {param['name']}: {e.message}"
        for e in validator.iter_errors(value)
    ]


def check_request(method: str, path: str, query: dict[str, str], body: Any) -> list[str]:
    """Problems with a request against the spec (empty list: valid)."""
    op = find_operation(method, path)
    if op is None:
        return [f"{method} {path}: no such operation in the vendored GitHub API subset"]
    problems = []
    match = op.pattern.match(path)
    assert match
    names = re.findall(r"\{([^}]+)\}", op.template)
    values = dict(zip(names, match.groups(), strict=True))
    for param in op.parameters():
        if param["in"] == "path":
            problems += _check_parameter(param, values[param["name"]])
        elif param["in"] == "query" and param["name"] in query:
            problems += _check_parameter(param, query[param["name"]])
    known_query = {p["name"] for p in op.parameters() if p["in"] == "query"}
    problems += [f"unknown query parameter {name}" for name in query if name not in known_query]
    request_body = op.spec.get("requestBody")
    if request_body is not None:
        if body is None:
            if request_body.get("required"):
                problems.append("request body required")
        else:
            pointer = _pointer(
                "paths",
                op.template,
                op.method,
                "requestBody",
                "content",
                "application/json",
                "schema",
            )
            problems += [f"request body {e}" for e in _errors(pointer, body)]
    elif body is not None:
        problems.append("request body sent to an operation that takes none")
    return [f"{method} {path}: {p}" for p in problems]


def documented_statuses(method: str, path: str) -> set[int]:
    op = find_operation(method, path)
    return {int(code) for code in op.spec["responses"]} if op else set()


def check_response(method: str, path: str, status: int, body: Any) -> list[str]:
    """Problems with a response the fake returns (must be a documented status and shape)."""
    op = find_operation(method, path)
    if op is None:
        return [f"{method} {path}: no such operation"]
    responses = op.spec["responses"]
    if str(status) not in responses:
        return [f"{method} {path}: status {status} is not documented"]
    response = responses[str(status)]
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[1]
        base = _pointer("components", "responses", name)
        response = _resolve(response)
    else:
        base = _pointer("paths", op.template, op.method, "responses", str(status))
    content = response.get("content", {})
    if "application/json" not in content:
        return [] if body is None else [f"{method} {path}: {status} has no JSON body in the spec"]
    pointer = base + "/" + _pointer("content", "application/json", "schema")
    return [f"{method} {path} -> {status}: {e}" for e in _errors(pointer, body)]


def example(schema_pointer_or_schema: str | dict[str, Any]) -> Any:
    """A minimal instance with every required field, built from the schema itself."""
    if isinstance(schema_pointer_or_schema, str):
        node: Any = document()
        for part in schema_pointer_or_schema.split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return _example(node, 0)
    return _example(schema_pointer_or_schema, 0)


def _example(schema: dict[str, Any], depth: int) -> Any:
    schema = _resolve(schema)
    if depth > 12:
        return None
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _example(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o).get("type") != "null"]
            return _example(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if "enum" in schema:
        return next(v for v in schema["enum"] if v is not None)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {
            name: _example(props.get(name, {}), depth + 1) for name in schema.get("required", [])
        }
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    if fmt == "uri":
        return "https://github.example/x"
    if fmt == "email":
        return "someone@example.com"
    return "x"
