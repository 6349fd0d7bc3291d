"""Publish settings: which platform, which API, which token, which PR/MR and commit.

`settings_from_environment` is called by the CLI with os.environ; the core only
ever sees the PublishSettings value. The token is wrapped in a Secret so no
repr, log line or error message can show it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from audit.errors import PublishError, UsageError
from audit.report.links import safe_http_base

Platform = Literal["github", "gitlab"]
GITLAB_TOKEN_VARIABLE = "MLAUDIT_GITLAB_TOKEN"  # noqa: S105 - a variable name
GITHUB_TOKEN_VARIABLES = ("MLAUDIT_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
GITLAB_TOKEN_VARIABLES = (GITLAB_TOKEN_VARIABLE, "GITLAB_TOKEN")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/(?!\.\.?$)[A-Za-z0-9_.-]{1,100}")


class Secret:
    """A token: usable as a header value, never shown."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class RateLimitPolicy:
    """How long publishing waits out the GitHub or GitLab API's rate limits and faults (seconds).

    Bounded by total time, not attempts: a rate limit names when to come back.
    (audit.tracking.retry.RetryPolicy is the tracking server's, bounded by attempts.)
    """

    max_total: float = 300.0
    base_delay: float = 1.0
    max_delay: float = 60.0
    secondary_min_delay: float = 60.0  # GitHub asks for >= 1 min after a secondary limit
    timeout: float = 30.0  # one HTTP request


@dataclass(frozen=True)
class PublishSettings:
    platform: Platform
    api_url: str
    server_url: str
    token: Secret = field(repr=False)
    token_variable: str
    repository: str  # GitHub "owner/name"; GitLab the project id or path
    sha: str | None = None
    pr_number: int | None = None  # GitHub PR number or GitLab MR iid
    event: dict[str, Any] | None = field(default=None, repr=False)
    event_name: str | None = None
    run_id: str | None = None
    run_number: int | None = None
    step_summary: Path | None = None
    job_url: str | None = None
    login: str | None = None  # the account our comments are written by, if known
    retry: RateLimitPolicy = field(default_factory=RateLimitPolicy)


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return name, value
    return "", ""


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and 0 < int(value) < 2**31 else None


def _base(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name) or default
    base = safe_http_base(raw)
    if base is None or "@" in raw:
        raise UsageError(f"{name} is not an http(s) URL without credentials: cannot use it")
    return base


def _load_event(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return event if isinstance(event, dict) else None


def _sha(value: str | None) -> str | None:
    return value if value and _SHA.fullmatch(value) else None


def github_settings(env: Mapping[str, str], retry: RateLimitPolicy) -> PublishSettings:
    variable, token = _first(env, GITHUB_TOKEN_VARIABLES)
    repository = env.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.fullmatch(repository):
        raise UsageError("GITHUB_REPOSITORY must be owner/name")
    event = _load_event(env.get("GITHUB_EVENT_PATH"))
    pr_number = None
    head_sha = None
    pull = (event or {}).get("pull_request")
    if isinstance(pull, dict):
        number = pull.get("number")
        pr_number = number if isinstance(number, int) and 0 < number < 2**31 else None
        head = pull.get("head")
        head_sha = _sha(head.get("sha")) if isinstance(head, dict) else None
    server = _base(env, "GITHUB_SERVER_URL", "https://github.com")
    run_id = env.get("GITHUB_RUN_ID") if (env.get("GITHUB_RUN_ID") or "").isdigit() else None
    summary = env.get("GITHUB_STEP_SUMMARY")
    return PublishSettings(
        platform="github",
        api_url=_base(env, "GITHUB_API_URL", "https://api.github.com"),
        server_url=server,
        token=Secret(token),
        token_variable=variable or GITHUB_TOKEN_VARIABLES[0],
        repository=repository,
        # On pull_request events GITHUB_SHA is the merge commit; the PR head is what reviewers see.
        sha=head_sha or _sha(env.get("GITHUB_SHA")),
        pr_number=pr_number,
        event=event,
        event_name=env.get("GITHUB_EVENT_NAME"),
        run_id=run_id,
        run_number=_positive_int(env.get("GITHUB_RUN_NUMBER")),
        step_summary=Path(summary) if summary else None,
        job_url=f"{server}/{repository}/actions/runs/{run_id}" if run_id else None,
        login=env.get("MLAUDIT_GITHUB_LOGIN") or None,
        retry=retry,
    )


def gitlab_settings(env: Mapping[str, str], retry: RateLimitPolicy) -> PublishSettings:
    variable, token = _first(env, GITLAB_TOKEN_VARIABLES)
    project = env.get("CI_PROJECT_ID", "")
    if not project.isdigit():
        raise UsageError("CI_PROJECT_ID must be the numeric project id")
    api = _base(env, "CI_API_V4_URL", "https://gitlab.com/api/v4")
    job_url = safe_http_base(env.get("CI_JOB_URL"))
    return PublishSettings(
        platform="gitlab",
        api_url=api,
        server_url=_base(env, "CI_SERVER_URL", api.rsplit("/api/v4", 1)[0]),
        token=Secret(token),
        token_variable=variable or GITLAB_TOKEN_VARIABLE,
        repository=project,
        sha=_sha(env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")) or _sha(env.get("CI_COMMIT_SHA")),
        pr_number=_positive_int(env.get("CI_MERGE_REQUEST_IID")),
        run_id=env.get("CI_PIPELINE_ID") if (env.get("CI_PIPELINE_ID") or "").isdigit() else None,
        run_number=_positive_int(env.get("CI_PIPELINE_IID")),
        job_url=job_url,
        login=None,
        retry=retry,
    )


def detect_platform(env: Mapping[str, str]) -> Platform | None:
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


def settings_from_environment(
    env: Mapping[str, str], retry: RateLimitPolicy | None = None, platform: Platform | None = None
) -> PublishSettings:
    """Settings for the CI system `env` describes (GitHub Actions, GHES, GitLab CI)."""
    retry = retry or RateLimitPolicy()
    chosen = platform or detect_platform(env)
    if chosen == "github":
        return github_settings(env, retry)
    if chosen == "gitlab":
        return gitlab_settings(env, retry)
    raise UsageError(
        "not running in GitHub Actions or GitLab CI (GITHUB_ACTIONS / GITLAB_CI unset); "
        "use --platform, or --dry-run to see what would be sent"
    )


def require_token(settings: PublishSettings, env: Mapping[str, str]) -> None:
    """Refuse early, and name the variable to set, when no usable token is there."""
    if settings.token:
        return
    if settings.platform == "gitlab":
        if env.get("CI_JOB_TOKEN"):
            raise PublishError(
                "CI_JOB_TOKEN cannot post merge request notes or set commit statuses",
                hint="store a project or group access token (scope api) in "
                f"{GITLAB_TOKEN_VARIABLE}",
            )
        raise PublishError(
            "no GitLab token", hint=f"set {GITLAB_TOKEN_VARIABLE} to a project or group token"
        )
    raise PublishError(
        "no GitHub token",
        hint="set GITHUB_TOKEN (e.g. env: GITHUB_TOKEN: ${{ github.token }}) or "
        "MLAUDIT_GITHUB_TOKEN",
    )
