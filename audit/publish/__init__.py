"""Post a rendered report to GitHub or GitLab: sticky comment/note, commit status, check run.

Public API: `publish(settings, request, client_factory=None) -> PublishOutcome`,
`settings_from_environment(env)`, `PublishRequest`, `read_artifact`/`write_artifact`.
The core never reads os.environ; the CLI builds the settings and passes them in.
Tests swap `client_factory` to point the client at a local fake, with a fake
sleep so limits and back-off run instantly.
"""

from __future__ import annotations

from collections.abc import Callable

from audit.errors import UsageError
from audit.publish.artifact import Handover, read_artifact, write_artifact
from audit.publish.body import ReportFacts, defang, fit_body, read_facts
from audit.publish.http import ApiClient
from audit.publish.outcome import Action, PublishOutcome, PublishRequest
from audit.publish.settings import PublishSettings, RetryPolicy, settings_from_environment
from audit.report.marker import Marker

ClientFactory = Callable[[PublishSettings], ApiClient]


def default_client(settings: PublishSettings) -> ApiClient:
    if settings.platform == "github":
        from audit.publish.github import github_client

        return github_client(settings)
    from audit.publish.gitlab import gitlab_client

    return gitlab_client(settings)


def plan(settings: PublishSettings, request: PublishRequest) -> PublishOutcome:
    """--dry-run: what would be sent, without a single request (and without a token)."""
    sha = request.sha or settings.sha
    number = request.pr_number or settings.pr_number
    outcome = PublishOutcome(settings.platform, number, sha)
    marker = Marker(request.key, sha=sha, run=settings.run_number, timestamp=request.timestamp)
    body = defang(request.body) if request.untrusted else request.body
    lines = body.split("\n")
    preview = {"characters": len(body), "first_line": lines[0][:200], "marker": marker.render()}
    target = f"#{number}" if number else "(PR found from the commit)"
    state = (
        "success" if request.passed else ("failure" if settings.platform == "github" else "failed")
    )
    if settings.platform == "github":
        repo = f"/repos/{settings.repository}"
        outcome.actions += [
            Action(
                "comment",
                "would-send",
                f"upsert on {target}",
                {
                    "method": "POST or PATCH",
                    "path": f"{repo}/issues/{number or '?'}/comments",
                    "body": preview,
                },
            ),
            Action(
                "status",
                "would-send",
                f"mlaudit/{request.key}: {state}",
                {"method": "POST", "path": f"{repo}/statuses/{sha}"},
            ),
            Action(
                "check-run",
                "would-send",
                f"mlaudit/{request.key}",
                {"method": "POST", "path": f"{repo}/check-runs"},
            ),
        ]
        if settings.step_summary is not None:
            outcome.actions.append(Action("step-summary", "would-send", "append"))
    else:
        project = f"/projects/{settings.repository}"
        outcome.actions += [
            Action(
                "note",
                "would-send",
                f"upsert on !{number or '?'}",
                {
                    "method": "POST or PUT",
                    "path": f"{project}/merge_requests/{number or '?'}/notes",
                    "body": preview,
                },
            ),
            Action(
                "status",
                "would-send",
                f"mlaudit/{request.key}: {state}",
                {"method": "POST", "path": f"{project}/statuses/{sha}"},
            ),
        ]
    return outcome


def publish(
    settings: PublishSettings,
    request: PublishRequest,
    client_factory: ClientFactory | None = None,
) -> PublishOutcome:
    """Post `request` as settings say; returns what was done, raises PublishError on failure."""
    if request.untrusted and settings.platform != "github":
        # Only the GitHub path verifies an artifact's PR against the API.
        raise UsageError("untrusted (artifact) reports can be published to GitHub only")
    if request.dry_run:
        return plan(settings, request)
    client = (client_factory or default_client)(settings)
    if settings.platform == "github":
        from audit.publish.github import publish_github

        outcome = publish_github(settings, request, client)
    else:
        from audit.publish.gitlab import publish_gitlab

        outcome = publish_gitlab(settings, request, client)
    if client.waits:
        outcome.notes.append(
            f"waited {sum(client.waits):.1f} s over {len(client.waits)} retries (limits or faults)"
        )
    return outcome


__all__ = [
    "Action",
    "ApiClient",
    "ClientFactory",
    "Handover",
    "PublishOutcome",
    "PublishRequest",
    "PublishSettings",
    "ReportFacts",
    "RetryPolicy",
    "fit_body",
    "publish",
    "read_artifact",
    "read_facts",
    "settings_from_environment",
    "write_artifact",
]
