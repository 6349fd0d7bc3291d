"""A small lakeFS server on loopback, checked against lakeFS's published OpenAPI description.

Holds repositories of commits (each a set of objects), branches and tags. Every
request the `lakefs` SDK sends and every response returned is validated against
the vendored subset (tests/fixtures/openapi/lakefs-subset.json); problems collect
in `violations`, which the fixture asserts empty.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from openapi_subset import OpenApiSubset
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SPEC = OpenApiSubset("lakefs-subset.json", "urn:lakefs-openapi")
ACCESS_KEY, SECRET_KEY = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_OBJECTS_LS = re.compile(r"^/api/v1/repositories/([^/]+)/refs/([^/]+)/objects/ls$")
TRAIN_OBJECTS = {
    "transactions/2026-01.csv": b"a,b\n1,2\n",
    "transactions/2026-02.csv": b"a,b\n3,4\n",
    "transactions-old/x.csv": b"old",
    "labels.csv": b"y\n1\n",
}
_REF = re.compile(r"^/api/v1/repositories/([^/]+)/(branches|tags|commits)/([^/]+)$")


def commit_id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass
class FakeRepository:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # id -> path -> data
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def commit(self, branch: str, objects: dict[str, bytes]) -> str:
        parent = self.branches.get(branch, "")
        new = commit_id(parent, *sorted(f"{k}={v.hex()}" for k, v in objects.items()))
        self.commits[new] = dict(objects)
        self.branches[branch] = new
        return new


@dataclass
class FakeLakeFS:
    server: HTTPServer
    repositories: dict[str, FakeRepository] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    # Called once after the first object listing: another writer moving a branch.
    after_listing: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def endpoint(self) -> str:
        return self.server.url_for("/api/v1")

    def env(self) -> dict[str, str]:
        return {
            "LAKECTL_SERVER_ENDPOINT_URL": self.endpoint,
            "LAKECTL_CREDENTIALS_ACCESS_KEY_ID": ACCESS_KEY,
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def repository(self, name: str) -> FakeRepository:
        return self.repositories.setdefault(name, FakeRepository())

    # -- HTTP ---------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        query = dict(request.args.items())
        body = json.loads(request.data) if request.data else None
        self.log.append((request.method, request.path))
        self.violations += SPEC.check_request(request.method, request.path, query, body)
        expected = "Basic " + base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            status, answer = 401, {"message": "error authenticating request"}
        else:
            status, answer = self._route(request.path, query)
        self.violations += SPEC.check_response(request.method, request.path, status, answer)
        return Response(json.dumps(answer), status=status, content_type="application/json")

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        listing = _OBJECTS_LS.match(path)
        if listing:
            return self._list(listing.group(1), listing.group(2), query)
        ref = _REF.match(path)
        if ref is None:
            return 404, {"message": "not found"}
        repo = self.repositories.get(ref.group(1))
        kind, name = ref.group(2), ref.group(3)
        if repo is None:
            return 404, {"message": "repository not found"}
        if kind == "branches" and name in repo.branches:
            return 200, {"id": name, "commit_id": repo.branches[name]}
        if kind == "tags" and name in repo.tags:
            return 200, {"id": name, "commit_id": repo.tags[name]}
        if kind == "commits":
            resolved = repo.branches.get(name) or repo.tags.get(name) or name
            if resolved in repo.commits:
                return 200, _commit(resolved)
        return 404, {"message": f"{kind[:-1]} not found"}

    def _list(self, repo_name: str, ref: str, query: dict[str, str]) -> tuple[int, Any]:
        repo = self.repositories.get(repo_name)
        resolved = repo and (repo.branches.get(ref) or repo.tags.get(ref) or ref)
        if repo is None or resolved not in repo.commits:
            return 404, {"message": "not found"}
        prefix, after = query.get("prefix", ""), query.get("after", "")
        amount = int(query.get("amount", "1000"))
        names = sorted(p for p in repo.commits[resolved] if p.startswith(prefix) and p > after)
        page, more = names[:amount], len(names) > amount
        results = [_stats(path, repo.commits[resolved][path]) for path in page]
        if self.after_listing is not None:
            hook, self.after_listing = self.after_listing, None
            hook()
        return 200, {
            "pagination": {
                "has_more": more,
                "next_offset": page[-1] if more else "",
                "results": len(page),
                "max_per_page": 1000,
            },
            "results": results,
        }


def _commit(commit: str) -> dict[str, Any]:
    return {
        "id": commit,
        "parents": [],
        "committer": "tester",
        "message": "data",
        "creation_date": 1767225600,
        "meta_range_id": "",
        "metadata": {},
    }


def _stats(path: str, data: bytes) -> dict[str, Any]:
    return {
        "path": path,
        "path_type": "object",
        "physical_address": f"s3://bucket/{hashlib.sha256(data).hexdigest()}",
        "checksum": hashlib.md5(data).hexdigest(),
        "size_bytes": len(data),
        "mtime": 1767225600,
    }
