"""A small GitHub REST API on loopback (pytest-httpserver), checked against GitHub's OpenAPI.

Every request the client sends and every response the fake returns is
validated against the vendored OpenAPI subset; problems are collected in
`violations` and the fixture fails the test if any remain. Faults (429, 502,
403 secondary limits) are injected per route and are exempt from the
response-shape check only because GitHub sends them for any route.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from github_openapi import check_request, check_response, example
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PREFIX = "/api/v3"  # GitHub Enterprise Server layout, so GHES URLs are exercised too
OWNER, REPO = "octo", "demo"
FULL_NAME = f"{OWNER}/{REPO}"


def _schema(path: str, method: str, status: str) -> str:
    escaped = path.replace("~", "~0").replace("/", "~1")
    return f"paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"


def _merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return copy.deepcopy(overlay)


def user(login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    simple = example("components/schemas/simple-user")
    return _merge(simple, {"login": login, "id": user_id, "type": kind})


@dataclass
class Fault:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class FakeGitHub:
    server: HTTPServer
    tokens: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: 403 on /user
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    check_runs: list[dict[str, Any]] = field(default_factory=list)
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)  # "METHOD /path" -> queue
    check_runs_forbidden: bool = False
    violations: list[str] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1000

    def __post_init__(self) -> None:
        self.server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def api_url(self) -> str:
        return self.server.url_for(PREFIX)

    # -- state helpers -------------------------------------------------------------

    def add_pull(self, number: int, head_sha: str, base_repo: str = FULL_NAME) -> None:
        pull = example(_schema("/repos/{owner}/{repo}/pulls/{pull_number}", "get", "200"))
        owner, name = base_repo.split("/")
        pull = _merge(
            pull,
            {
                "number": number,
                "state": "open",
                "head": {"sha": head_sha, "ref": "feature"},
                "base": {
                    "ref": "main",
                    "repo": {"full_name": base_repo, "name": name, "owner": {"login": owner}},
                },
            },
        )
        self.pulls[number] = pull
        self.commit_pulls.setdefault(head_sha, []).append(number)

    def add_comment(self, number: int, author: dict[str, Any], body: str) -> dict[str, Any]:
        self.next_id += 1
        schema = _schema("/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", "201")
        comment = _merge(
            example(schema),
            {
                "id": self.next_id,
                "body": body,
                "user": author,
                "html_url": f"https://github.example/{FULL_NAME}/pull/{number}#c{self.next_id}",
            },
        )
        self.comments.setdefault(number, []).append(comment)
        return comment

    def fail_next(self, route: str, *faults: Fault) -> None:
        self.faults.setdefault(route, []).extend(faults)

    # -- the HTTP side -----------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path.removeprefix(PREFIX)
        method = request.method
        query = dict(request.args.items())
        body = json.loads(request.data) if request.data else None
        self.log.append((method, path))
        self.violations += check_request(method, path, query, body)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        for route, queue in self.faults.items():
            if queue and f"{method} {path}".startswith(route):
                fault = queue.pop(0)
                return self._json(fault.status, fault.body, fault.headers)
        if self.check_runs_forbidden and (method, path) == (
            "POST",
            f"/repos/{FULL_NAME}/check-runs",
        ):
            # What GitHub answers a personal access token; not in this route's spec.
            message = {"message": "Resource not accessible by personal access token"}
            return self._json(403, message, {})
        if token not in self.tokens:
            return self._reply(
                method,
                path,
                401,
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com"},
            )
        status, data, headers = self._route(method, path, query, body, token)
        return self._reply(method, path, status, data, headers)

    def _reply(
        self, method: str, path: str, status: int, data: Any, headers: dict[str, str] | None = None
    ) -> Response:
        self.violations += check_response(method, path, status, data)
        return self._json(status, data, headers or {})

    @staticmethod
    def _json(status: int, data: Any, headers: dict[str, str]) -> Response:
        payload = "" if data is None else json.dumps(data)
        return Response(payload, status=status, headers=headers, content_type="application/json")

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any, token: str
    ) -> tuple[int, Any, dict[str, str]]:
        repo = f"/repos/{FULL_NAME}"
        if (method, path) == ("GET", "/user"):
            account = self.tokens[token]
            if account is None:
                return (
                    403,
                    {
                        "message": "Resource not accessible by integration",
                        "documentation_url": "https://docs.github.com",
                    },
                    {},
                )
            private = example(_schema("/user", "get", "200"))
            return 200, _merge(private, account), {}
        if match := re.fullmatch(rf"{repo}/commits/([0-9a-f]+)/pulls", path):
            numbers = self.commit_pulls.get(match.group(1), [])
            simple = example("components/schemas/pull-request-simple")
            items = [
                _merge(
                    simple,
                    {k: self.pulls[n][k] for k in ("number", "state")}
                    | {"head": {"sha": self.pulls[n]["head"]["sha"]}},
                )
                for n in numbers
            ]
            return 200, items, {}
        if match := re.fullmatch(rf"{repo}/pulls/([0-9]+)", path):
            pull = self.pulls.get(int(match.group(1)))
            if pull is None:
                return 404, {"message": "Not Found", "documentation_url": "x"}, {}
            return 200, pull, {}
        if match := re.fullmatch(rf"{repo}/issues/([0-9]+)/comments", path):
            number = int(match.group(1))
            if method == "POST":
                author = self._author(token)
                return 201, self.add_comment(number, author, body["body"]), {}
            return self._page(path, self.comments.get(number, []), query)
        if match := re.fullmatch(rf"{repo}/issues/comments/([0-9]+)", path):
            for items in self.comments.values():
                for comment in items:
                    if comment["id"] == int(match.group(1)):
                        if comment["user"]["login"] != self._author(token)["login"]:
                            return 403, {"message": "Forbidden", "documentation_url": "x"}, {}
                        comment["body"] = body["body"]
                        return 200, comment, {}
            return 404, {"message": "Not Found", "documentation_url": "x"}, {}
        if match := re.fullmatch(rf"{repo}/statuses/([0-9a-f]+)", path):
            self.statuses.append({"sha": match.group(1), **body})
            status = example(_schema("/repos/{owner}/{repo}/statuses/{sha}", "post", "201"))
            return 201, _merge(status, {"state": body["state"], "context": body["context"]}), {}
        if path == f"{repo}/check-runs":
            self.check_runs.append(body)
            run = example(_schema("/repos/{owner}/{repo}/check-runs", "post", "201"))
            return 201, _merge(run, {"name": body["name"], "head_sha": body["head_sha"]}), {}
        return 404, None, {}

    def _author(self, token: str) -> dict[str, Any]:
        account = self.tokens[token]
        if account is None:
            return user("github-actions[bot]", 41898282, "Bot")
        return user(account["login"], account["id"])

    def _page(
        self, path: str, items: list[dict[str, Any]], query: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", "30")), 100)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        last = max(1, -(-len(items) // per_page))
        links = []
        if page < last:
            url = self.server.url_for(PREFIX + path)
            links.append(
                f'<{url}?{urlencode({"per_page": per_page, "page": page + 1})}>; rel="next"'
            )
            links.append(f'<{url}?{urlencode({"per_page": per_page, "page": last})}>; rel="last"')
        if links:
            headers["Link"] = ", ".join(links)
        return 200, chunk, headers
