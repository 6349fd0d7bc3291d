"""Post a rendered report to GitHub or GitLab: sticky comment/note, commit status, check run.

Public API: `publish(settings, request, client_factory=None) -> PublishOutcome`,
`settings_from_environment(env)`, `PublishRequest`, `read_artifact`/`write_artifact`.
The commit status and the check run show the gate's verdict (`PublishRequest.verdict`,
data from gate.json or a gate recomputed here); no decision is ever read from Markdown.
The core never reads os.environ; the CLI builds the settings and passes them in.
Tests swap `client_factory` to point the client at a local fake, with a fake
sleep so limits and back-off run instantly.
"""

from __future__ import annotations

from collections.abc import Callable

from audit.errors import UsageError
from audit.publish.artifact import Handover, read_artifact, write_artifact
from audit.publish.body import fit_body
from audit.publish.http import ApiClient
from audit.publish.outcome import Action, ApiRequest, PublishOutcome, PublishRequest
from audit.publish.settings import PublishSettings, RateLimitPolicy, settings_from_environment

ClientFactory = Callable[[PublishSettings], ApiClient]


def default_client(settings: PublishSettings) -> ApiClient:
    if settings.platform == "github":
        from audit.publish.github import github_client

        return github_client(settings)
    from audit.publish.gitlab import gitlab_client

    return gitlab_client(settings)


def plan(settings: PublishSettings, request: PublishRequest) -> PublishOutcome:
    """--dry-run: the exact writes that would be sent, without a single request (or token)."""
    if settings.platform == "github":
        from audit.publish.github import plan_github

        return plan_github(settings, request)
    from audit.publish.gitlab import plan_gitlab

    return plan_gitlab(settings, request)


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
    "ApiRequest",
    "ClientFactory",
    "Handover",
    "PublishOutcome",
    "PublishRequest",
    "PublishSettings",
    "RateLimitPolicy",
    "fit_body",
    "publish",
    "read_artifact",
    "settings_from_environment",
    "write_artifact",
]
