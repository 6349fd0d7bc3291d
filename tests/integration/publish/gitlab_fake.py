"""A small GitLab REST API (v4) on loopback, following GitLab's API documentation.

Routes, parameters and response fields follow docs.gitlab.com: Notes API
(merge request notes: list with sort/order_by and pagination, create, modify
with PUT), Merge requests API (single MR; MRs associated with a commit), Users
API (GET /user), Commits API (POST /projects/:id/statuses/:sha). Requests that
break the documented parameter rules are collected in `violations`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PREFIX = "/gitlab/api/v4"  # a self-managed instance under a relative URL root
PROJECT = 42
STATUS_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}

# Documented parameters per route (name -> allowed values or None for any).
DOC_PARAMS: dict[tuple[str, str], dict[str, set[str] | None]] = {
    ("GET", "notes"): {
        "sort": {"asc", "desc"},
        "order_by": {"created_at", "updated_at"},
        "per_page": None,
        "page": None,
    },
    ("POST", "notes"): {
        "body": None,
        "internal": None,
        "created_at": None,
        "merge_request_diff_head_sha": None,
    },
    ("PUT", "note"): {"body": None},
    ("POST", "statuses"): {
        "state": STATUS_STATES,
        "ref": None,
        "name": None,
        "context": None,
        "target_url": None,
        "description": None,
        "coverage": None,
        "pipeline_id": None,
    },
}


def user(user_id: int, username: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": username,
        "name": username,
        "state": "active",
        "avatar_url": "https://gitlab.example/avatar.png",
        "web_url": f"https://gitlab.example/{username}",
    }


@dataclass
class FakeGitLab:
    server: HTTPServer
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    merge_requests: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 500

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def api_url(self) -> str:
        return self.server.url_for(PREFIX)

    def add_merge_request(self, iid: int, sha: str) -> None:
        self.merge_requests[iid] = {
            "id": 9000 + iid,
            "iid": iid,
            "project_id": PROJECT,
            "title": "Feature",
            "state": "opened",
            "sha": sha,
            "source_branch": "feature",
            "target_branch": "main",
            "web_url": f"https://gitlab.example/group/demo/-/merge_requests/{iid}",
        }

    def add_note(
        self, iid: int, author: dict[str, Any], body: str, system: bool = False
    ) -> dict[str, Any]:
        self.next_id += 1
        note = {
            "id": self.next_id,
            "type": None,
            "body": body,
            "author": author,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "system": system,
            "noteable_id": 9000 + iid,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "project_id": PROJECT,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }
        self.notes.setdefault(iid, []).append(note)
        return note

    def handle(self, request: Request) -> Response:
        path = request.path.removeprefix(PREFIX)
        method = request.method
        self.log.append((method, path))
        params: dict[str, Any] = dict(request.args.items())
        if request.data:
            params.update(json.loads(request.data))
        token = request.headers.get("PRIVATE-TOKEN")
        if request.headers.get("JOB-TOKEN"):
            return self._json(403, {"message": "403 Forbidden"})
        if token not in self.tokens:
            return self._json(401, {"message": "401 Unauthorized"})
        account = self.tokens[token]
        project = f"/projects/{PROJECT}"
        if (method, path) == ("GET", "/user"):
            return self._json(200, account)
        if match := re.fullmatch(
            rf"{project}/repository/commits/([0-9a-f]{{40}})/merge_requests", path
        ):
            found = [mr for mr in self.merge_requests.values() if mr["sha"] == match.group(1)]
            return self._json(200, found)
        if match := re.fullmatch(rf"{project}/merge_requests/([0-9]+)", path):
            mr = self.merge_requests.get(int(match.group(1)))
            return self._json(200, mr) if mr else self._json(404, {"message": "404 Not found"})
        if match := re.fullmatch(rf"{project}/merge_requests/([0-9]+)/notes", path):
            iid = int(match.group(1))
            self._check(method, "notes", params)
            if method == "POST":
                return self._json(201, self.add_note(iid, account, params["body"]))
            return self._page(path, self.notes.get(iid, []), params)
        if match := re.fullmatch(rf"{project}/merge_requests/([0-9]+)/notes/([0-9]+)", path):
            self._check(method, "note", params)
            for note in self.notes.get(int(match.group(1)), []):
                if note["id"] == int(match.group(2)):
                    if note["author"]["id"] != account["id"]:
                        return self._json(403, {"message": "403 Forbidden"})
                    note["body"] = params["body"]
                    return self._json(200, note)
            return self._json(404, {"message": "404 Not found"})
        if match := re.fullmatch(rf"{project}/statuses/([0-9a-f]{{40}})", path):
            self._check(method, "statuses", params)
            self.statuses.append({"sha": match.group(1), **params})
            status = {
                "id": len(self.statuses),
                "sha": match.group(1),
                "status": params["state"],
                "name": params.get("name", "default"),
                "description": params.get("description"),
                "target_url": params.get("target_url"),
                "author": account,
            }
            return self._json(201, status)
        self.violations.append(f"{method} {path}: not a documented route")
        return self._json(404, {"message": "404 Not found"})

    def _check(self, method: str, route: str, params: dict[str, Any]) -> None:
        allowed = DOC_PARAMS.get((method, route))
        if allowed is None:
            self.violations.append(f"{method} {route}: undocumented method")
            return
        for name, value in params.items():
            if name not in allowed:
                self.violations.append(f"{method} {route}: undocumented parameter {name}")
            elif allowed[name] is not None and str(value) not in allowed[name]:  # type: ignore[operator]
                self.violations.append(f"{method} {route}: {name}={value!r} not allowed")
        if method in ("POST", "PUT") and route in ("notes", "note") and not params.get("body"):
            self.violations.append(f"{method} {route}: body is required")
        if route == "statuses" and "state" not in params:
            self.violations.append("POST statuses: state is required")
        if "per_page" in params and not 1 <= int(params["per_page"]) <= 100:
            self.violations.append("per_page must be 1..100")

    @staticmethod
    def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(
            json.dumps(data), status=status, headers=headers or {}, content_type="application/json"
        )

    def _page(self, path: str, items: list[dict[str, Any]], params: dict[str, Any]) -> Response:
        per_page = int(params.get("per_page", 20))
        page = int(params.get("page", 1))
        ordered = items if params.get("sort", "desc") == "asc" else list(reversed(items))
        chunk = ordered[(page - 1) * per_page : page * per_page]
        total_pages = max(1, -(-len(items) // per_page))
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "X-Next-Page": "",
        }
        if page < total_pages:
            headers["X-Next-Page"] = str(page + 1)
            query = {k: v for k, v in params.items() if k != "page"} | {"page": page + 1}
            headers["Link"] = (
                f'<{self.server.url_for(PREFIX + path)}?{urlencode(query)}>; rel="next"'
            )
        return self._json(200, chunk, headers)
