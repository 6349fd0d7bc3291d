"""GitHub's official OpenAPI description (vendored subset) as request/response validators.

The shared checker (tests/openapi_subset.py) over tests/fixtures/openapi/github-subset.json;
the GitHub fake and its tests use these three names.
"""

from __future__ import annotations

from openapi_subset import OpenApiSubset

GITHUB = OpenApiSubset("github-subset.json", "urn:github-openapi")
check_request = GITHUB.check_request
check_response = GITHUB.check_response
example = GITHUB.example
