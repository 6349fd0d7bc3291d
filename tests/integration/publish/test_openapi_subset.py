"""The shared OpenAPI checker refuses what the vendor's description refuses, for each fake.

The GitHub fake's own tests (test_publish_github.py) show it refusing a bad status
state and a non-integer path parameter; these cover what only lakeFS's description
has (a server path, boolean and integer query values) and the request-body rules,
without a server.
"""

from __future__ import annotations

from openapi_subset import OpenApiSubset

LAKEFS = OpenApiSubset("lakefs-subset.json", "urn:lakefs-openapi")
GITHUB = OpenApiSubset("github-subset.json", "urn:github-openapi")
LISTING = "/api/v1/repositories/fraud-data/refs/main/objects/ls"
BRANCH = "/api/v1/repositories/fraud-data/branches/main"


def test_a_request_lakefs_documents_passes():
    query = {"presign": "true", "user_metadata": "false", "amount": "10", "prefix": "a/"}
    assert LAKEFS.check_request("GET", LISTING, query, None) == []
    assert LAKEFS.check_response("GET", BRANCH, 200, {"id": "main", "commit_id": "c0"}) == []


def test_a_request_lakefs_would_refuse_is_a_violation():
    query = {"presign": "yes", "amount": "ten", "colour": "red"}
    problems = LAKEFS.check_request("GET", LISTING, query, {"unexpected": 1})
    assert [p.removeprefix(f"GET {LISTING}: ") for p in problems] == [
        "query parameter presign='yes' is not a boolean",
        "query parameter amount='ten' is not an integer",
        "unknown query parameter colour",
        "request body sent to an operation that takes none",
    ]
    # Operations sit below the server's /api/v1, not at the root.
    outside = LISTING.removeprefix("/api/v1")
    assert "no such operation" in LAKEFS.check_request("GET", outside, {}, None)[0]


def test_a_response_lakefs_would_not_send_is_a_violation():
    assert LAKEFS.check_response("GET", BRANCH, 200, {"id": "main"}) == [
        f"GET {BRANCH} -> 200: <root>: 'commit_id' is a required property"
    ]
    assert LAKEFS.check_response("GET", BRANCH, 418, None) == [
        f"GET {BRANCH}: status 418 is not documented"
    ]


def test_request_bodies_are_checked_where_the_description_has_one():
    statuses = "/repos/octo/demo/statuses/abc"
    assert GITHUB.check_request("POST", statuses, {}, None) == [
        f"POST {statuses}: request body required"
    ]
    assert GITHUB.check_request("POST", statuses, {}, {"state": "success"}) == []
    assert GITHUB.check_request("GET", "/user", {}, {"x": 1}) == [
        "GET /user: request body sent to an operation that takes none"
    ]
