"""GitLab (gitlab.com and self-managed): sticky merge request note and commit status.

Notes are found by author (the token's own user) plus marker and key, and
updated in place with PUT; a note for a newer head commit is never replaced.
"""

from __future__ import annotations

from typing import Any

from audit.errors import PublishError
from audit.publish.body import fit_body, with_marker
from audit.publish.http import ApiClient
from audit.publish.outcome import Action, PublishOutcome, PublishRequest, existing_is_newer
from audit.publish.settings import PublishSettings
from audit.report.budget import BUDGETS
from audit.report.escape import clean_text
from audit.report.marker import Marker, find_marker

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


class GitLabPublisher:
    def __init__(self, settings: PublishSettings, client: ApiClient) -> None:
        self.settings = settings
        self.client = client
        self.project_path = f"/projects/{settings.repository}"

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
            self.client.request("POST", notes, json={"body": body})
            return Action("note", "created", f"!{iid}")
        theirs = find_marker(str(existing.get("body")))
        if theirs is not None and existing_is_newer(theirs, ours, head_sha):
            return Action("note", "skipped", "the posted report is for a newer commit or run")
        self.client.request("PUT", f"{notes}/{existing['id']}", json={"body": body})
        return Action("note", "updated", f"!{iid}")

    def set_status(self, sha: str, key: str, passed: bool, title: str) -> Action:
        payload: dict[str, Any] = {
            "state": "success" if passed else "failed",
            "name": f"mlaudit/{key}",
            "description": clean_text(title, 255),
        }
        if self.settings.job_url:
            payload["target_url"] = self.settings.job_url
        if self.settings.run_id:
            payload["pipeline_id"] = int(self.settings.run_id)
        self.client.request("POST", f"{self.project_path}/statuses/{sha}", json=payload)
        return Action("status", "created", f"mlaudit/{key}: {payload['state']}")


def publish_gitlab(
    settings: PublishSettings, request: PublishRequest, client: ApiClient
) -> PublishOutcome:
    publisher = GitLabPublisher(settings, client)
    sha = request.sha or settings.sha
    if sha is None:
        raise PublishError("no commit SHA (CI_COMMIT_SHA) to report on")
    iid = request.pr_number or settings.pr_number or publisher.find_merge_request(sha)
    outcome = PublishOutcome("gitlab", iid, sha)
    ours = Marker(request.key, sha=sha, run=settings.run_number, timestamp=request.timestamp)
    body = with_marker(fit_body(request.body, BUDGETS["gitlab-note"], POINTER, reserve=200), ours)
    if iid is not None:
        outcome.actions.append(publisher.upsert_note(iid, body, ours, publisher.head_sha(iid)))
    else:
        outcome.notes.append("no open merge request for this commit: no note posted")
    outcome.actions.append(publisher.set_status(sha, request.key, request.passed, request.title))
    return outcome
