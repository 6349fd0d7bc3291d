"""A vendored OpenAPI 3.0 subset as request/response validators (lakeFS's, here).

Same approach as tests/integration/publish/github_openapi.py, for any subset file:
`nullable` becomes a null type, refs resolve into the whole document, path
templates match request paths, and parameters, bodies and documented statuses are
checked. Problems are returned as strings so a fake can collect them.
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

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openapi"


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*kinds, "null"]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _escape(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Operation:
    template: str
    method: str
    pattern: re.Pattern[str]


class OpenApiSubset:
    def __init__(self, name: str, uri: str) -> None:
        self.document: dict[str, Any] = _convert(
            json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        )
        self.uri = uri
        resource = Resource(contents=self.document, specification=DRAFT4)
        self.registry = Registry().with_resource(uri, resource)
        self.base = (self.document.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    @functools.cached_property
    def operations(self) -> list[Operation]:
        ops = []
        for template, item in self.document["paths"].items():
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(self.base + template)) + "$"
            for method in item:
                if method != "parameters":
                    ops.append(Operation(template, method, re.compile(regex)))
        return ops

    def find(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method.lower() and op.pattern.match(path):
                return op
        return None

    def _parameters(self, op: Operation) -> list[dict[str, Any]]:
        item = self.document["paths"][op.template]
        shared = item.get("parameters", [])
        return [self._resolve(p) for p in [*shared, *item[op.method].get("parameters", [])]]

    def _errors(self, pointer: str, instance: Any) -> list[str]:
        validator = Draft4Validator({"$ref": f"{self.uri}#/{pointer}"}, registry=self.registry)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in validator.iter_errors(instance)
        ]

    def _parameter(self, param: dict[str, Any], raw: str) -> list[str]:
        schema = param.get("schema", {})
        value: Any = raw
        if schema.get("type") == "integer":
            if not re.fullmatch(r"-?[0-9]+", raw):
                return [f"{param['name']}={raw!r} is not an integer"]
            value = int(raw)
        elif schema.get("type") == "boolean":
            if raw not in ("true", "false"):
                return [f"{param['name']}={raw!r} is not a boolean"]
            value = raw == "true"
        validator = Draft4Validator(schema, registry=self.registry)
        return [f"{param['name']}: {e.message}" for e in validator.iter_errors(value)]

    def check_request(self, method: str, path: str, query: dict[str, str]) -> list[str]:
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the vendored subset"]
        match = op.pattern.match(path)
        assert match
        values = dict(zip(re.findall(r"\{([^}]+)\}", op.template), match.groups(), strict=True))
        problems = []
        params = self._parameters(op)
        for param in params:
            if param["in"] == "path":
                problems += self._parameter(param, values[param["name"]])
            elif param["in"] == "query" and param["name"] in query:
                problems += self._parameter(param, query[param["name"]])
            elif param["in"] == "query" and param.get("required"):
                problems.append(f"required query parameter {param['name']} missing")
        known = {p["name"] for p in params if p["in"] == "query"}
        problems += [f"unknown query parameter {name}" for name in query if name not in known]
        return [f"{method} {path}: {p}" for p in problems]

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation"]
        responses = self.document["paths"][op.template][op.method]["responses"]
        if str(status) not in responses:
            return [f"{method} {path}: status {status} is not documented"]
        response = responses[str(status)]
        if "$ref" in response:
            base = _escape("components", "responses", response["$ref"].rsplit("/", 1)[1])
            response = self._resolve(response)
        else:
            base = _escape("paths", op.template, op.method, "responses", str(status))
        if "application/json" not in response.get("content", {}):
            return [] if body is None else [f"{method} {path}: {status} has no JSON body"]
        pointer = base + "/" + _escape("content", "application/json", "schema")
        return [f"{method} {path} -> {status}: {e}" for e in self._errors(pointer, body)]
