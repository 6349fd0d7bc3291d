"""GitHub (github.com and GHES): sticky PR comment, commit status, check run, step summary.

Only comments written by our own account and carrying our marker with the
same key are ever edited; a comment for a newer head commit is never replaced
by one for an older commit. Every value taken from an API response is checked
for type before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.errors import PublishError
from audit.publish.body import fit_body, with_marker
from audit.publish.http import ApiClient, ApiError, Response
from audit.publish.outcome import (
    Action,
    ApiRequest,
    PublishOutcome,
    PublishRequest,
    existing_is_newer,
)
from audit.publish.settings import PublishSettings
from audit.report.budget import BUDGETS
from audit.report.escape import clean_text
from audit.report.marker import Marker, find_marker

ACTIONS_BOT = "github-actions[bot]"
# The gate's verdict as GitHub states. "Not gated" is never a success: an error
# status, and a failed check (a neutral conclusion would satisfy branch protection).
STATUS_STATES = {"passed": "success", "failed": "failure", "not-gated": "error"}
CHECK_CONCLUSIONS = {"passed": "success", "failed": "failure", "not-gated": "failure"}
POINTER = (
    "> [!NOTE]\n> This report was cut to fit GitHub's size limit; "
    "the full report is in the run's artifacts."
)


def github_client(settings: PublishSettings, **kwargs: Any) -> ApiClient:
    return ApiClient(
        settings.api_url,
        settings.token,
        lambda token: {"Authorization": f"Bearer {token}"},
        settings.retry,
        extra_headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        },
        **kwargs,
    )


def _login(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("login"), str):
        return str(data["login"])
    return None


def _sha_of(pull: Any) -> str | None:
    head = pull.get("head") if isinstance(pull, dict) else None
    sha = head.get("sha") if isinstance(head, dict) else None
    return sha if isinstance(sha, str) else None


def repo_path(settings: PublishSettings) -> str:
    return f"/repos/{settings.repository}"


def comment_body(settings: PublishSettings, request: PublishRequest, sha: str) -> str:
    """The comment exactly as posted: the report within GitHub's limit, with our marker."""
    ours = Marker(request.key, sha=sha, run=settings.run_number, timestamp=request.timestamp)
    body = fit_body(request.body, BUDGETS["github-comment"], POINTER, reserve=200)
    return with_marker(body, ours)


def status_payload(settings: PublishSettings, request: PublishRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "state": STATUS_STATES[request.state],
        "context": f"mlaudit/{request.key}",
        "description": clean_text(request.status_text(), 140),
    }
    if settings.job_url:
        payload["target_url"] = settings.job_url
    return payload


def check_payload(
    settings: PublishSettings, request: PublishRequest, sha: str, body: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": f"mlaudit/{request.key}",
        "head_sha": sha,
        "status": "completed",
        "conclusion": CHECK_CONCLUSIONS[request.state],
        "output": {
            "title": clean_text(request.status_text(), 200),
            "summary": fit_body(body, BUDGETS["github-check"], POINTER),
        },
    }
    if settings.job_url:
        payload["details_url"] = settings.job_url
    return payload


class GitHubPublisher:
    def __init__(self, settings: PublishSettings, client: ApiClient) -> None:
        self.settings = settings
        self.client = client
        self.repo_path = repo_path(settings)
        self.sent: list[ApiRequest] = []

    def send(self, method: str, path: str, payload: dict[str, Any]) -> Response:
        """A write, recorded exactly as sent (the outcome lists it)."""
        response = self.client.request(method, path, json=payload)
        self.sent.append(ApiRequest(method, path, payload))
        return response

    # -- who and where ------------------------------------------------------------

    def account_login(self) -> str:
        """The login our comments carry: GET /user, or the Actions bot for GITHUB_TOKEN."""
        if self.settings.login:
            return self.settings.login
        try:
            login = _login(self.client.request("GET", "/user").data)
        except ApiError as error:
            # An installation token (GITHUB_TOKEN) may not read /user; it writes as the bot.
            if error.status in (401, 403):
                return ACTIONS_BOT
            raise
        if login is None:
            raise PublishError("GET /user returned no login")
        return login

    def find_pull(self, sha: str) -> int | None:
        """The open PR whose head is `sha` (else any open PR containing it)."""
        pulls = self.client.request("GET", f"{self.repo_path}/commits/{sha}/pulls").data
        candidates = [p for p in pulls or [] if isinstance(p, dict) and p.get("state") == "open"]
        candidates.sort(key=lambda p: _sha_of(p) != sha)
        for pull in candidates:
            number = pull.get("number")
            if isinstance(number, int) and number > 0:
                return number
        return None

    def get_pull(self, number: int) -> dict[str, Any]:
        data = self.client.request("GET", f"{self.repo_path}/pulls/{number}").data
        if not isinstance(data, dict):
            raise PublishError(f"GET pull #{number} returned no object")
        return data

    def verify_pull(self, pull: dict[str, Any], number: int, sha: str) -> None:
        """The artifact's PR must be a PR into this repository whose head is `sha`."""
        base = pull.get("base")
        repo = base.get("repo") if isinstance(base, dict) else None
        full_name = repo.get("full_name") if isinstance(repo, dict) else None
        if not isinstance(full_name, str) or full_name.lower() != self.settings.repository.lower():
            raise PublishError(
                f"refusing to publish: PR #{number} is not a pull request into "
                f"{self.settings.repository} (the artifact's PR number is forged or wrong)"
            )
        if _sha_of(pull) != sha:
            raise PublishError(
                f"refusing to publish: PR #{number} head is not {sha[:12]} (the artifact is "
                "forged, or a newer commit was pushed; the newer run will publish)"
            )

    # -- the sticky comment -----------------------------------------------------------

    def find_comment(self, number: int, login: str, key: str) -> dict[str, Any] | None:
        """Our latest comment with our marker and key on PR `number`."""
        found = None
        path = f"{self.repo_path}/issues/{number}/comments"
        for comment in self.client.paginate(path):
            if not isinstance(comment, dict) or _login(comment.get("user")) != login:
                continue
            body = comment.get("body")
            marker = find_marker(body) if isinstance(body, str) else None
            if marker is not None and marker.key == key and isinstance(comment.get("id"), int):
                found = comment
        return found

    def upsert_comment(self, number: int, body: str, ours: Marker, head_sha: str | None) -> Action:
        login = self.account_login()
        existing = self.find_comment(number, login, ours.key)
        if existing is None:
            path = f"{self.repo_path}/issues/{number}/comments"
            data = self.send("POST", path, {"body": body}).data
            return Action("comment", "created", _html_url(data))
        theirs = find_marker(str(existing.get("body")))
        if theirs is not None and existing_is_newer(theirs, ours, head_sha):
            return Action(
                "comment", "skipped", "the posted report is for a newer commit or run; kept it"
            )
        path = f"{self.repo_path}/issues/comments/{existing['id']}"
        data = self.send("PATCH", path, {"body": body}).data
        return Action("comment", "updated", _html_url(data))

    # -- status, check run, step summary ---------------------------------------------

    def set_status(self, sha: str, request: PublishRequest) -> Action:
        payload = status_payload(self.settings, request)
        self.send("POST", f"{self.repo_path}/statuses/{sha}", payload)
        return Action("status", "created", f"{payload['context']}: {payload['state']}")

    def create_check(self, sha: str, request: PublishRequest, body: str) -> Action:
        payload = check_payload(self.settings, request, sha, body)
        try:
            self.send("POST", f"{self.repo_path}/check-runs", payload)
        except ApiError as error:
            if error.status == 403:
                return Action(
                    "check-run",
                    "skipped",
                    "the token may not create check runs (needs a GitHub App or "
                    "GITHUB_TOKEN with checks: write); the commit status carries the result",
                )
            raise
        return Action("check-run", "created", f"{payload['name']}: {payload['conclusion']}")


def append_step_summary(path: Path, body: str) -> Action:
    """Append to $GITHUB_STEP_SUMMARY, within its 1 MiB limit including what is there."""
    try:
        used = path.stat().st_size if path.exists() else 0
        text = fit_body(body, BUDGETS["step-summary"], POINTER, reserve=used + 2)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
    except OSError as error:
        raise PublishError(f"cannot append to the step summary: {error.strerror}") from None
    return Action("step-summary", "appended", f"{len(text):,} characters")


def _html_url(data: Any) -> str:
    url = data.get("html_url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else ""


def publish_github(
    settings: PublishSettings, request: PublishRequest, client: ApiClient
) -> PublishOutcome:
    publisher = GitHubPublisher(settings, client)
    sha = request.sha or settings.sha
    number = request.pr_number or settings.pr_number
    outcome = PublishOutcome("github", number, sha)
    if sha is None:
        raise PublishError("no commit SHA (GITHUB_SHA or the artifact's head_sha) to report on")
    if number is None and not request.untrusted:
        number = publisher.find_pull(sha)
        outcome.pr_number = number
    head_sha = None
    if number is not None:
        pull = publisher.get_pull(number)
        if request.untrusted:
            publisher.verify_pull(pull, number, sha)
        head_sha = _sha_of(pull)
    body = comment_body(settings, request, sha)
    ours = find_marker(body)
    assert ours is not None
    if number is not None:
        outcome.actions.append(publisher.upsert_comment(number, body, ours, head_sha))
    else:
        outcome.notes.append("no open pull request for this commit: no comment posted")
    outcome.actions.append(publisher.set_status(sha, request))
    outcome.actions.append(publisher.create_check(sha, request, body))
    if settings.step_summary is not None:
        outcome.actions.append(append_step_summary(settings.step_summary, body))
    outcome.requests.extend(publisher.sent)
    return outcome


def plan_github(settings: PublishSettings, request: PublishRequest) -> PublishOutcome:
    """--dry-run: the writes exactly as they would be sent, without a request or a token.

    The comment is shown as created (POST); when our comment is already there
    the same body is sent with PATCH to that comment instead. An artifact's PR
    is verified against the API only when really publishing.
    """
    sha = request.sha or settings.sha
    number = request.pr_number or settings.pr_number
    outcome = PublishOutcome("github", number, sha)
    if sha is None:
        raise PublishError("no commit SHA (GITHUB_SHA or the artifact's head_sha) to report on")
    base = repo_path(settings)
    body = comment_body(settings, request, sha)
    if number is not None:
        path = f"{base}/issues/{number}/comments"
        outcome.requests.append(ApiRequest("POST", path, {"body": body}))
        outcome.actions.append(Action("comment", "would-send", f"POST {path}"))
    else:
        outcome.notes.append("no PR number known without the API: the comment is not shown")
    status = ApiRequest("POST", f"{base}/statuses/{sha}", status_payload(settings, request))
    check = ApiRequest("POST", f"{base}/check-runs", check_payload(settings, request, sha, body))
    outcome.requests += [status, check]
    outcome.actions.append(Action("status", "would-send", f"{status.json['state']}"))
    outcome.actions.append(Action("check-run", "would-send", f"{check.json['conclusion']}"))
    if settings.step_summary is not None:
        outcome.actions.append(Action("step-summary", "would-send", "append"))
    if request.untrusted:
        outcome.notes.append(
            f"not checked in a dry run: that PR #{number} is a PR into "
            f"{settings.repository} whose head is {sha[:12]}"
        )
    return outcome
