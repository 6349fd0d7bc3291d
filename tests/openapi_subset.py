"""A vendored OpenAPI 3.0 subset (tests/fixtures/openapi/) as request/response validators.

The one checker behind every fake that follows a published API description
(GitHub's, lakeFS's): a fake checks each request it receives and each response it
returns, and collects the problems, as strings, in its `violations`. It never
answers a request itself, so a fake cannot pass a check by what it returns.

OpenAPI 3.0 schemas are not quite JSON Schema: `nullable: true` must become a
"null" type (and a None in an enum: GitHub sends null for a nullable enum), and
refs point into the whole document. The converted document is registered once
under `uri`; each check validates against a `$ref` into it, so component refs
resolve as the vendor wrote them. Paths match below the first server's path
(lakeFS's "/api/v1"); query values arrive as strings, so integers and booleans
are parsed before their schema is applied.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openapi"


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


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


@dataclass(frozen=True)
class Operation:
    template: str
    method: str
    pattern: re.Pattern[str]


class OpenApiSubset:
    """One subset file, e.g. OpenApiSubset("lakefs-subset.json", "urn:lakefs-openapi")."""

    def __init__(self, name: str, uri: str) -> None:
        self.name = name
        self.uri = uri

    @functools.cached_property
    def document(self) -> dict[str, Any]:
        raw = json.loads((FIXTURES / self.name).read_text(encoding="utf-8"))
        converted: dict[str, Any] = _convert(raw)
        return converted

    @functools.cached_property
    def registry(self) -> Registry:
        resource = Resource(contents=self.document, specification=DRAFT4)
        registry: Registry = Registry().with_resource(self.uri, resource)
        return registry

    @functools.cached_property
    def base(self) -> str:
        """The path every operation sits below: the first server's, "" without servers."""
        servers = self.document.get("servers") or [{"url": ""}]
        url: str = servers[0]["url"]
        return urlsplit(url).path.rstrip("/")

    @functools.cached_property
    def operations(self) -> list[Operation]:
        ops = []
        for template, item in self.document["paths"].items():
            escaped = re.escape(self.base + template)
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", escaped) + "$"
            for method in item:
                if method != "parameters":
                    ops.append(Operation(template, method, re.compile(regex)))
        return ops

    def find(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method.lower() and op.pattern.match(path):
                return op
        return None

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[_unescape(part)]
            node = target
        return node

    def _spec(self, op: Operation) -> dict[str, Any]:
        spec: dict[str, Any] = self.document["paths"][op.template][op.method]
        return spec

    def _parameters(self, op: Operation) -> list[dict[str, Any]]:
        shared = self.document["paths"][op.template].get("parameters", [])
        return [self._resolve(p) for p in [*shared, *self._spec(op).get("parameters", [])]]

    def _errors(self, pointer: str, instance: Any) -> list[str]:
        validator = Draft4Validator({"$ref": f"{self.uri}#/{pointer}"}, registry=self.registry)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in validator.iter_errors(instance)
        ]

    def _check_parameter(self, param: dict[str, Any], raw: str) -> list[str]:
        schema = param.get("schema", {})
        label = f"{param['in']} parameter {param['name']}"
        value: Any = raw
        if schema.get("type") == "integer":
            if not re.fullmatch(r"-?[0-9]+", raw):
                return [f"{label}={raw!r} is not an integer"]
            value = int(raw)
        elif schema.get("type") == "boolean":
            if raw not in ("true", "false"):
                return [f"{label}={raw!r} is not a boolean"]
            value = raw == "true"
        validator = Draft4Validator(schema, registry=self.registry)
        return [f"{label}: {e.message}" for e in validator.iter_errors(value)]

    def check_request(self, method: str, path: str, query: dict[str, str], body: Any) -> list[str]:
        """Problems with a request against the spec (empty list: valid); body None: none sent."""
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the vendored subset {self.name}"]
        match = op.pattern.match(path)
        assert match
        values = dict(zip(re.findall(r"\{([^}]+)\}", op.template), match.groups(), strict=True))
        params = self._parameters(op)
        problems = []
        for param in params:
            if param["in"] == "path":
                problems += self._check_parameter(param, values[param["name"]])
            elif param["in"] == "query" and param["name"] in query:
                problems += self._check_parameter(param, query[param["name"]])
            elif param["in"] == "query" and param.get("required"):
                problems.append(f"required query parameter {param['name']} missing")
        known = {p["name"] for p in params if p["in"] == "query"}
        problems += [f"unknown query parameter {name}" for name in query if name not in known]
        problems += self._check_body(op, body)
        return [f"{method} {path}: {p}" for p in problems]

    def _check_body(self, op: Operation, body: Any) -> list[str]:
        request_body = self._spec(op).get("requestBody")
        if request_body is None:
            return [] if body is None else ["request body sent to an operation that takes none"]
        if body is None:
            return ["request body required"] if request_body.get("required") else []
        pointer = _pointer(
            "paths", op.template, op.method, "requestBody", "content", "application/json", "schema"
        )
        return [f"request body {e}" for e in self._errors(pointer, body)]

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Problems with a response a fake returns (must be a documented status and shape)."""
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation"]
        responses = self._spec(op)["responses"]
        if str(status) not in responses:
            return [f"{method} {path}: status {status} is not documented"]
        response = responses[str(status)]
        if "$ref" in response:
            base = _pointer("components", "responses", response["$ref"].rsplit("/", 1)[1])
            response = self._resolve(response)
        else:
            base = _pointer("paths", op.template, op.method, "responses", str(status))
        if "application/json" not in response.get("content", {}):
            return (
                [] if body is None else [f"{method} {path}: {status} has no JSON body in the spec"]
            )
        pointer = base + "/" + _pointer("content", "application/json", "schema")
        return [f"{method} {path} -> {status}: {e}" for e in self._errors(pointer, body)]

    def example(self, schema_pointer_or_schema: str | dict[str, Any]) -> Any:
        """A minimal instance with every required field, built from the schema itself."""
        if isinstance(schema_pointer_or_schema, dict):
            return self._example(schema_pointer_or_schema, 0)
        node: Any = self.document
        for part in schema_pointer_or_schema.split("/"):
            node = node[_unescape(part)]
        return self._example(node, 0)

    def _example(self, schema: dict[str, Any], depth: int) -> Any:
        schema = self._resolve(schema)
        if depth > 12:
            return None
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                value = self._example(part, depth + 1)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [o for o in schema[key] if self._resolve(o).get("type") != "null"]
                return self._example(options[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next(k for k in kind if k != "null")
        if "enum" in schema:
            return next(v for v in schema["enum"] if v is not None)
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            required = schema.get("required", [])
            return {name: self._example(props.get(name, {}), depth + 1) for name in required}
        return _scalar_example(kind, schema)


def _scalar_example(kind: Any, schema: dict[str, Any]) -> Any:
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    formats = {
        "date-time": "2026-01-01T00:00:00Z",
        "uri": "https://github.example/x",
        "email": "someone@example.com",
    }
    return formats.get(str(schema.get("format")), "x")
