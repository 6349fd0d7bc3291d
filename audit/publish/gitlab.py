"""GitLab (gitlab.com and self-managed): sticky merge request note and commit status.

Notes are found by author (the token's own user) plus marker and key, and
updated in place with PUT; a note for a newer head commit is never replaced.
"""

from __future__ import annotations

from typing import Any

from audit.errors import PublishError
from audit.publish.body import fit_body, with_marker
from audit.publish.http import ApiClient, Response
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

# The gate's verdict as a GitLab commit status: "not gated" is never a success.
STATUS_STATES = {"passed": "success", "failed": "failed", "not-gated": "failed"}
POINTER = (
    "> This report was cut to fit GitLab's note size limit; "
    "the full report is in the job's artifacts."
)


def gitlab_client(settings: PublishSettings, **kwargs: Any) -> ApiClient:
    return ApiClient(
        settings.api_url,
        settings.token,
        lambda token: {"PRIVATE-TOKEN": token},
        settings.retry,
        **kwargs,
    )


def project_path(settings: PublishSettings) -> str:
    return f"/projects/{settings.repository}"


def note_body(settings: PublishSettings, request: PublishRequest, sha: str) -> str:
    """The note exactly as posted: the report within GitLab's limit, with our marker."""
    ours = Marker(request.key, sha=sha, run=settings.run_number, timestamp=request.timestamp)
    return with_marker(fit_body(request.body, BUDGETS["gitlab-note"], POINTER, reserve=200), ours)


def status_payload(settings: PublishSettings, request: PublishRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "state": STATUS_STATES[request.state],
        "name": f"mlaudit/{request.key}",
        "description": clean_text(request.status_text(), 255),
    }
    if settings.job_url:
        payload["target_url"] = settings.job_url
    if settings.run_id:
        payload["pipeline_id"] = int(settings.run_id)
    return payload


class GitLabPublisher:
    def __init__(self, settings: PublishSettings, client: ApiClient) -> None:
        self.settings = settings
        self.client = client
        self.project_path = project_path(settings)
        self.sent: list[ApiRequest] = []

    def send(self, method: str, path: str, payload: dict[str, Any]) -> Response:
        """A write, recorded exactly as sent (the outcome lists it)."""
        response = self.client.request(method, path, json=payload)
        self.sent.append(ApiRequest(method, path, payload))
        return response

    def user_id(self) -> int:
        data = self.client.request("GET", "/user").data
        if not isinstance(data, dict) or not isinstance(data.get("id"), int):
            raise PublishError("GET /user returned no user id")
        return int(data["id"])

    def find_merge_request(self, sha: str) -> int | None:
        path = f"{self.project_path}/repository/commits/{sha}/merge_requests"
        for mr in self.client.request("GET", path).data or []:
            if isinstance(mr, dict) and mr.get("state") == "opened":
                iid = mr.get("iid")
                if isinstance(iid, int) and iid > 0:
                    return iid
        return None

    def head_sha(self, iid: int) -> str | None:
        data = self.client.request("GET", f"{self.project_path}/merge_requests/{iid}").data
        sha = data.get("sha") if isinstance(data, dict) else None
        return sha if isinstance(sha, str) else None

    def find_note(self, iid: int, user_id: int, key: str) -> dict[str, Any] | None:
        found = None
        path = f"{self.project_path}/merge_requests/{iid}/notes"
        for note in self.client.paginate(path, {"sort": "asc", "order_by": "created_at"}):
            if not isinstance(note, dict) or note.get("system"):
                continue
            author = note.get("author")
            if not isinstance(author, dict) or author.get("id") != user_id:
                continue
            body = note.get("body")
            marker = find_marker(body) if isinstance(body, str) else None
            if marker is not None and marker.key == key and isinstance(note.get("id"), int):
                found = note
        return found

    def upsert_note(self, iid: int, body: str, ours: Marker, head_sha: str | None) -> Action:
        existing = self.find_note(iid, self.user_id(), ours.key)
        notes = f"{self.project_path}/merge_requests/{iid}/notes"
        if existing is None:
            self.send("POST", notes, {"body": body})
            return Action("note", "created", f"!{iid}")
        theirs = find_marker(str(existing.get("body")))
        if theirs is not None and existing_is_newer(theirs, ours, head_sha):
            return Action("note", "skipped", "the posted report is for a newer commit or run")
        self.send("PUT", f"{notes}/{existing['id']}", {"body": body})
        return Action("note", "updated", f"!{iid}")

    def set_status(self, sha: str, request: PublishRequest) -> Action:
        payload = status_payload(self.settings, request)
        self.send("POST", f"{self.project_path}/statuses/{sha}", payload)
        return Action("status", "created", f"{payload['name']}: {payload['state']}")


def publish_gitlab(
    settings: PublishSettings, request: PublishRequest, client: ApiClient
) -> PublishOutcome:
    publisher = GitLabPublisher(settings, client)
    sha = request.sha or settings.sha
    if sha is None:
        raise PublishError("no commit SHA (CI_COMMIT_SHA) to report on")
    iid = request.pr_number or settings.pr_number or publisher.find_merge_request(sha)
    outcome = PublishOutcome("gitlab", iid, sha)
    body = note_body(settings, request, sha)
    ours = find_marker(body)
    assert ours is not None
    if iid is not None:
        outcome.actions.append(publisher.upsert_note(iid, body, ours, publisher.head_sha(iid)))
    else:
        outcome.notes.append("no open merge request for this commit: no note posted")
    outcome.actions.append(publisher.set_status(sha, request))
    outcome.requests.extend(publisher.sent)
    return outcome


def plan_gitlab(settings: PublishSettings, request: PublishRequest) -> PublishOutcome:
    """--dry-run: the writes exactly as they would be sent (a note is created, or the
    same body is sent with PUT to our existing note)."""
    sha = request.sha or settings.sha
    if sha is None:
        raise PublishError("no commit SHA (CI_COMMIT_SHA) to report on")
    iid = request.pr_number or settings.pr_number
    outcome = PublishOutcome("gitlab", iid, sha)
    base = project_path(settings)
    if iid is not None:
        path = f"{base}/merge_requests/{iid}/notes"
        outcome.requests.append(
            ApiRequest("POST", path, {"body": note_body(settings, request, sha)})
        )
        outcome.actions.append(Action("note", "would-send", f"POST {path}"))
    else:
        outcome.notes.append("no MR iid known without the API: the note is not shown")
    status = ApiRequest("POST", f"{base}/statuses/{sha}", status_payload(settings, request))
    outcome.requests.append(status)
    outcome.actions.append(Action("status", "would-send", str(status.json["state"])))
    return outcome
