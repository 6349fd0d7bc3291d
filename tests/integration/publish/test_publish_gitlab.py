"""Publishing to a GitLab fake (self-managed layout) that follows GitLab's API docs."""

from __future__ import annotations

import pytest
from gates import NOT_GATED, verdict
from gitlab_fake import PROJECT, user

from audit.errors import PublishError, UsageError
from audit.publish import PublishRequest, RateLimitPolicy, publish, settings_from_environment
from audit.publish.gitlab import gitlab_client
from audit.publish.settings import require_token
from audit.report.marker import Marker, find_marker

HEAD = "a" * 40
TOKEN = "glpat-SECRETsecret0123456789"
ME = user(31, "project_42_bot")
REPORT = (
    "## ❌ mlaudit: FAILED — toy-study v1: 1 of 2 signed claims shown.\n\n"
    "Evidence.\n\n<!-- mlaudit:report key=toy-study -->\n"
)


def env_for(gitlab, **extra):
    env = {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": gitlab.api_url,
        "CI_SERVER_URL": gitlab.server.url_for("/gitlab"),
        "CI_PROJECT_ID": str(PROJECT),
        "CI_COMMIT_SHA": HEAD,
        "CI_PIPELINE_ID": "9001",
        "CI_PIPELINE_IID": "17",
        "CI_JOB_URL": "https://gitlab.example/group/demo/-/jobs/1",
        "MLAUDIT_GITLAB_TOKEN": TOKEN,
    }
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run(gitlab, clock, body=REPORT, chosen=None, **extra):
    settings = settings_from_environment(env_for(gitlab, **extra), RateLimitPolicy(max_total=60))
    request = PublishRequest(
        body=body,
        key="toy-study",
        verdict=chosen or verdict("claims"),
        timestamp="2026-11-26T12:00:00Z",
    )
    return publish(
        settings,
        request,
        client_factory=lambda s: gitlab_client(
            s, sleep=clock.sleep, clock=clock.monotonic, wall_clock=clock.time
        ),
    )


@pytest.fixture
def project(gitlab):
    gitlab.tokens[TOKEN] = ME
    gitlab.add_merge_request(3, HEAD)
    return gitlab


def test_creates_note_and_failed_status(project, clock):
    outcome = run(project, clock, CI_MERGE_REQUEST_IID="3")
    assert [(a.target, a.action) for a in outcome.actions] == [
        ("note", "created"),
        ("status", "created"),
    ]
    (note,) = project.notes[3]
    assert find_marker(note["body"]) == Marker(
        "toy-study", sha=HEAD, run=17, timestamp="2026-11-26T12:00:00Z"
    )
    (status,) = project.statuses
    assert status["state"] == "failed"
    assert status["name"] == "mlaudit/toy-study"
    assert status["pipeline_id"] == 9001


def test_merge_request_found_from_the_commit(project, clock):
    outcome = run(project, clock)
    assert outcome.pr_number == 3


def test_updates_own_note_on_a_later_page_and_ignores_others(project, clock):
    human = user(5, "alice")
    impostor = user(66, "other_bot")
    for index in range(130):
        project.add_note(3, human, f"note {index}")
    project.add_note(3, human, "system " + Marker("toy-study").render(), system=True)
    forged = project.add_note(
        3, impostor, "forged " + Marker("toy-study", sha=HEAD, run=99).render()
    )
    ours = project.add_note(3, ME, "old " + Marker("toy-study", sha="b" * 40, run=2).render())
    outcome = run(project, clock, CI_MERGE_REQUEST_IID="3")
    assert outcome.actions[0].action == "updated"
    assert "mlaudit: FAILED" in ours["body"]
    assert forged["body"].startswith("forged ")
    assert ("PUT", f"/projects/{PROJECT}/merge_requests/3/notes/{ours['id']}") in project.log
    pages = [p for m, p in project.log if m == "GET" and p.endswith("/notes")]
    assert len(pages) == 2


def test_newer_note_is_kept(project, clock):
    project.add_note(3, ME, "newer " + Marker("toy-study", sha=HEAD, run=40).render())
    outcome = run(project, clock, CI_MERGE_REQUEST_IID="3")
    assert outcome.actions[0].action == "skipped"


def test_job_token_alone_is_refused_naming_the_variable(gitlab):
    env = env_for(gitlab, MLAUDIT_GITLAB_TOKEN=None, CI_JOB_TOKEN="job-token-value")
    settings = settings_from_environment(env)
    with pytest.raises(PublishError) as caught:
        require_token(settings, env)
    message = caught.value.user_message()
    assert "CI_JOB_TOKEN cannot post merge request notes" in message
    assert "MLAUDIT_GITLAB_TOKEN" in message
    assert "job-token-value" not in message


def test_self_managed_base_url_must_be_http(gitlab):
    with pytest.raises(UsageError, match="CI_API_V4_URL"):
        settings_from_environment(env_for(gitlab, CI_API_V4_URL="file:///etc/passwd"))


def test_oversized_report_is_cut_for_a_note(project, clock):
    body = (
        REPORT.split("<!--")[0]
        + "\n\n".join("p" * 1000 for _ in range(1500))
        + "\n\n"
        + Marker("toy-study").render()
    )
    run(project, clock, body=body, CI_MERGE_REQUEST_IID="3")
    note = project.notes[3][0]["body"]
    assert len(note) <= 1_000_000
    assert "cut to fit GitLab" in note


@pytest.mark.parametrize(
    ("chosen", "state", "description"),
    [
        (verdict(), "success", "PASSED: the gate passed all 7 rules"),
        (verdict("claims"), "failed", "FAILED: claims not supported"),
        (verdict("no-attrition"), "failed", "FAILED: audit evidence failed: attrition"),
        (NOT_GATED, "failed", "NOT GATED"),
    ],
)
def test_commit_status_shows_the_gate_verdict(project, clock, chosen, state, description):
    run(project, clock, chosen=chosen, CI_MERGE_REQUEST_IID="3")
    (status,) = project.statuses
    assert status["state"] == state
    assert status["description"].startswith(description)
