"""Publishing to a GitHub fake on loopback, every exchange checked against GitHub's OpenAPI."""

from __future__ import annotations

import json
from pathlib import Path

import markdown
import pytest
from gates import NOT_GATED, verdict
from github_fake import FULL_NAME, Fault, user

from audit.errors import InputError, PublishError, ValidationFailed
from audit.publish import PublishRequest, RateLimitPolicy, publish, settings_from_environment
from audit.publish.artifact import Handover, StudyDocuments, read_artifact, write_artifact
from audit.publish.github import github_client
from audit.report.marker import Marker, find_marker

HEAD = "a" * 40
OLD = "b" * 40
TOKEN = "ghp_SECRETsecret0123456789abcdefTOKEN"
ME = {"login": "mlaudit-bot", "id": 77}
OTHER_BOT = user("other-bot[bot]", 99, "Bot")
REPORT = (
    "## ✅ mlaudit: PASSED — toy-study v1: 2 of 2 signed claims shown.\n\n"
    "Some evidence.\n\n<!-- mlaudit:report key=toy-study -->\n"
)


def env_for(github, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": github.api_url,
        "GITHUB_SERVER_URL": "https://ghes.example",
        "GITHUB_REPOSITORY": FULL_NAME,
        "GITHUB_SHA": HEAD,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_RUN_ID": "555",
        "GITHUB_RUN_NUMBER": "12",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    env.update(extra)
    return env


def run(github, clock, tmp_path, body=REPORT, max_total=120.0, request_extra=None, **env_extra):
    settings = settings_from_environment(
        env_for(github, tmp_path, **env_extra), RateLimitPolicy(max_total=max_total)
    )
    request = PublishRequest(
        body=body,
        key="toy-study",
        timestamp="2026-11-26T12:00:00Z",
        **({"verdict": verdict()} | (request_extra or {})),
    )

    def factory(s):
        return github_client(s, sleep=clock.sleep, clock=clock.monotonic, wall_clock=clock.time)

    return publish(settings, request, client_factory=factory)


@pytest.fixture
def repo(github):
    github.tokens[TOKEN] = ME
    github.add_pull(7, HEAD)
    return github


def test_creates_comment_status_check_and_summary(repo, clock, tmp_path):
    outcome = run(repo, clock, tmp_path)
    assert [(a.target, a.action) for a in outcome.actions] == [
        ("comment", "created"),
        ("status", "created"),
        ("check-run", "created"),
        ("step-summary", "appended"),
    ]
    assert outcome.pr_number == 7  # found from the commit: no event payload given
    (comment,) = repo.comments[7]
    marker = find_marker(comment["body"])
    assert marker == Marker("toy-study", sha=HEAD, run=12, timestamp="2026-11-26T12:00:00Z")
    (status,) = repo.statuses
    assert status["context"] == "mlaudit/toy-study"
    assert status["state"] == "success"
    assert status["target_url"] == f"https://ghes.example/{FULL_NAME}/actions/runs/555"
    assert repo.check_runs[0]["conclusion"] == "success"
    assert "mlaudit: PASSED" in (tmp_path / "summary.md").read_text()


def test_pr_number_from_the_event_payload(repo, clock, tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}}))
    outcome = run(repo, clock, tmp_path, GITHUB_EVENT_PATH=str(event), GITHUB_SHA="c" * 40)
    assert outcome.pr_number == 7
    assert outcome.sha == HEAD  # the PR head, not the merge commit in GITHUB_SHA
    assert ("GET", f"/repos/{FULL_NAME}/commits/{'c' * 40}/pulls") not in repo.log


def test_updates_our_comment_on_page_three_in_place(repo, clock, tmp_path):
    humans = user("alice", 5)
    for index in range(230):
        repo.add_comment(7, humans, f"comment {index}")
    ours = repo.add_comment(
        7,
        user(ME["login"], ME["id"]),
        "old report\n\n" + Marker("toy-study", sha=OLD, run=3).render(),
    )
    for index in range(15):
        repo.add_comment(7, humans, f"later {index}")
    outcome = run(repo, clock, tmp_path)
    assert outcome.actions[0].action == "updated"
    assert len(repo.comments[7]) == 246  # nothing new posted
    assert "mlaudit: PASSED" in ours["body"]
    pages = [p for m, p in repo.log if m == "GET" and p.endswith("/issues/7/comments")]
    assert len(pages) == 3
    assert ("PATCH", f"/repos/{FULL_NAME}/issues/comments/{ours['id']}") in repo.log


def test_another_accounts_comment_with_our_marker_is_ignored(repo, clock, tmp_path):
    forged = repo.add_comment(
        7, OTHER_BOT, "fake report " + Marker("toy-study", sha=HEAD, run=99).render()
    )
    outcome = run(repo, clock, tmp_path)
    assert outcome.actions[0].action == "created"
    assert forged["body"].startswith("fake report")
    assert len(repo.comments[7]) == 2


def test_other_key_is_a_separate_comment(repo, clock, tmp_path):
    repo.add_comment(7, user(ME["login"], ME["id"]), Marker("other-study", sha=HEAD).render())
    outcome = run(repo, clock, tmp_path)
    assert outcome.actions[0].action == "created"


def test_report_for_an_older_commit_never_replaces_a_newer_one(repo, clock, tmp_path):
    newer = repo.add_comment(
        7, user(ME["login"], ME["id"]), "new " + Marker("toy-study", sha=HEAD, run=20).render()
    )
    outcome = run(
        repo,
        clock,
        tmp_path,
        GITHUB_SHA=OLD,
        GITHUB_RUN_NUMBER="19",
        request_extra={"pr_number": 7},
    )
    assert outcome.actions[0].action == "skipped"
    assert newer["body"].startswith("new ")


def test_same_commit_later_run_replaces_earlier_run(repo, clock, tmp_path):
    earlier = repo.add_comment(
        7, user(ME["login"], ME["id"]), "early " + Marker("toy-study", sha=HEAD, run=11).render()
    )
    outcome = run(repo, clock, tmp_path)  # run 12
    assert outcome.actions[0].action == "updated"
    assert not earlier["body"].startswith("early ")


def test_same_commit_older_run_is_skipped(repo, clock, tmp_path):
    repo.add_comment(
        7, user(ME["login"], ME["id"]), "late " + Marker("toy-study", sha=HEAD, run=13).render()
    )
    assert run(repo, clock, tmp_path).actions[0].action == "skipped"


def test_github_token_writes_as_the_actions_bot(github, clock, tmp_path):
    github.tokens[TOKEN] = None  # installation token: GET /user is 403
    github.add_pull(7, HEAD)
    bot_comment = github.add_comment(
        7, user("github-actions[bot]", 41898282, "Bot"), Marker("toy-study", sha=OLD).render()
    )
    outcome = run(github, clock, tmp_path)
    assert outcome.actions[0].action == "updated"
    assert "mlaudit: PASSED" in bot_comment["body"]


def test_429_with_retry_after_waits_then_succeeds(repo, clock, tmp_path):
    repo.fail_next(
        f"POST /repos/{FULL_NAME}/issues/7/comments",
        Fault(429, {"Retry-After": "7"}, {"message": "slow down"}),
    )
    outcome = run(repo, clock, tmp_path)
    assert outcome.actions[0].action == "created"
    assert clock.sleeps == [7.0]
    assert any("waited 7.0 s" in note for note in outcome.notes)


def test_502_then_success_backs_off(repo, clock, tmp_path):
    repo.fail_next(
        f"GET /repos/{FULL_NAME}/pulls/7",
        Fault(502, {}, {"message": "Bad gateway"}),
        Fault(502, {}, None),
    )
    outcome = run(repo, clock, tmp_path)
    assert outcome.actions[0].action == "created"
    assert clock.sleeps == [1.0, 2.0]  # exponential


def test_primary_rate_limit_waits_for_reset(repo, clock, tmp_path):
    reset = int(clock.wall) + 30
    repo.fail_next(
        "GET /user",
        Fault(
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            {"message": "API rate limit exceeded"},
        ),
    )
    run(repo, clock, tmp_path)
    assert clock.sleeps == [31.0]


def test_secondary_rate_limit_waits_at_least_a_minute(repo, clock, tmp_path):
    repo.fail_next(
        f"POST /repos/{FULL_NAME}/statuses",
        Fault(403, {}, {"message": "You have exceeded a secondary rate limit"}),
    )
    run(repo, clock, tmp_path)
    assert clock.sleeps == [60.0]


def test_gives_up_after_the_time_bound_without_leaking_the_token(repo, clock, tmp_path):
    repo.fail_next(f"GET /repos/{FULL_NAME}/pulls/7", *[Fault(503, {}, None)] * 50)
    with pytest.raises(PublishError) as caught:
        run(repo, clock, tmp_path, max_total=20)
    message = caught.value.user_message()
    assert "gave up within 20 s" in message
    assert sum(clock.sleeps) <= 20
    assert TOKEN not in message


def test_api_error_echoing_the_token_is_scrubbed(repo, clock, tmp_path):
    repo.fail_next(
        f"POST /repos/{FULL_NAME}/issues/7/comments",
        Fault(422, {}, {"message": f"bad token {TOKEN} here"}),
    )
    with pytest.raises(PublishError) as caught:
        run(repo, clock, tmp_path)
    assert TOKEN not in caught.value.user_message()
    assert "***" in caught.value.user_message()


def test_link_to_another_origin_is_refused(repo, clock, tmp_path):
    repo.fail_next(
        f"GET /repos/{FULL_NAME}/issues/7/comments",
        Fault(200, {"Link": '<https://evil.example/steal?page=2>; rel="next"'}, []),
    )
    with pytest.raises(PublishError, match="outside its own origin"):
        run(repo, clock, tmp_path)


def test_check_run_forbidden_is_skipped_with_a_note(repo, clock, tmp_path):
    repo.check_runs_forbidden = True
    outcome = run(repo, clock, tmp_path)
    check = next(a for a in outcome.actions if a.target == "check-run")
    assert check.action == "skipped"
    assert "checks: write" in check.detail
    assert repo.statuses  # the status still carries the result


def _balanced(text: str) -> None:
    assert text.count("<details") == text.count("</details>")
    assert sum(1 for line in text.split("\n") if line.strip().startswith("```")) % 2 == 0


def test_body_over_the_limit_is_cut_at_a_block_boundary(repo, clock, tmp_path):
    rows = "\n".join(f"| {i} | {'x' * 80} |" for i in range(2000))
    big = (
        REPORT.split("<!--")[0]
        + "<details>\n<summary>Trials</summary>\n\n| a | b |\n|---|---|\n"
        + rows
        + "\n\n</details>\n\n"
        + "```mermaid\nxychart-beta\n```\n\n"
        + "tail paragraph\n\n"
        + "<!-- mlaudit:report key=toy-study -->\n"
    )
    run(repo, clock, tmp_path, body=big)
    (comment,) = repo.comments[7]
    body = comment["body"]
    assert len(body) <= 65_536
    _balanced(body)
    assert "full report is in the run" in body
    assert find_marker(body).sha == HEAD
    check_summary = repo.check_runs[0]["output"]["summary"]
    assert len(check_summary) <= 65_535
    _balanced(check_summary)
    html = markdown.markdown(body, extensions=["tables", "md_in_html"])
    assert "mlaudit: PASSED" in html


def test_dry_run_sends_nothing_and_lists_the_exact_writes(repo, clock, tmp_path):
    planned = run(repo, clock, tmp_path, request_extra={"dry_run": True, "pr_number": 7})
    assert repo.log == []
    assert {a.action for a in planned.actions} == {"would-send"}
    sent = run(repo, clock, tmp_path, request_extra={"pr_number": 7})
    assert planned.requests == sent.requests
    assert [(r.method, r.path) for r in sent.requests] == [
        ("POST", f"/repos/{FULL_NAME}/issues/7/comments"),
        ("POST", f"/repos/{FULL_NAME}/statuses/{HEAD}"),
        ("POST", f"/repos/{FULL_NAME}/check-runs"),
    ]
    assert sent.requests[0].json == {"body": repo.comments[7][0]["body"]}
    assert {**sent.requests[1].json, "sha": HEAD} == repo.statuses[0]


@pytest.mark.parametrize(
    ("failing", "state", "conclusion", "description"),
    [
        ((), "success", "success", "PASSED: the gate passed all 7 rules"),
        (("claims",), "failure", "failure", "FAILED: claims not supported"),
        (("provenance",), "failure", "failure",
         "FAILED: audit evidence failed: provenance (provenance)"),
        (None, "error", "failure", "NOT GATED: no gate result was given"),
    ],
)  # fmt: skip
def test_status_and_check_show_the_gate_verdict(repo, clock, tmp_path, failing, state,
                                                conclusion, description):  # fmt: skip
    chosen = NOT_GATED if failing is None else verdict(*failing)
    run(repo, clock, tmp_path, request_extra={"verdict": chosen})
    (status,) = repo.statuses
    assert status["state"] == state
    assert status["description"].startswith(description)
    (check,) = repo.check_runs
    assert check["conclusion"] == conclusion
    assert check["output"]["title"].startswith(description)


# -- the fork-safe two-stage mode ----------------------------------------------------


def test_untrusted_request_posts_to_the_verified_pr_and_says_advisory(repo, clock, tmp_path):
    outcome = run(
        repo,
        clock,
        tmp_path,
        GITHUB_SHA="d" * 40,
        request_extra={"pr_number": 7, "sha": HEAD, "untrusted": True},
    )
    assert outcome.actions[0].action == "created"
    body = repo.comments[7][0]["body"]
    assert body.startswith(REPORT.split("<!--")[0])  # our own rendering: posted as is
    (status,) = repo.statuses
    assert status["state"] == "success"
    assert status["description"].startswith("advisory, evidence from an unprivileged run: ")
    assert repo.check_runs[0]["output"]["title"].startswith("advisory, evidence from an")


def test_forged_pr_number_is_refused(repo, clock, tmp_path):
    repo.add_pull(8, "e" * 40)  # a real PR, but not the one the artifact's commit belongs to
    with pytest.raises(PublishError, match="refusing to publish: PR #8 head"):
        run(repo, clock, tmp_path, request_extra={"pr_number": 8, "sha": HEAD, "untrusted": True})
    assert repo.comments == {}
    assert repo.statuses == []


def test_pr_into_another_repository_is_refused(repo, clock, tmp_path):
    repo.add_pull(9, HEAD, base_repo="someone/else")
    with pytest.raises(PublishError, match="not a pull request into octo/demo"):
        run(repo, clock, tmp_path, request_extra={"pr_number": 9, "sha": HEAD, "untrusted": True})
    assert repo.comments == {}


def _study(tmp_path: Path) -> StudyDocuments:
    folder = tmp_path / "study"
    (folder / "approvals").mkdir(parents=True)
    for name in ("edd.yaml", "results.json", "analysis.json"):
        (folder / name).write_text("{}")
    (folder / "approvals" / "alice.sig").write_text("sig")
    return StudyDocuments(folder / "edd.yaml", folder / "results.json", folder / "analysis.json")


@pytest.mark.parametrize(
    ("meta", "pointer"),
    [
        ({"pr_number": "7"}, "/pr_number"),
        ({"pr_number": -1}, "/pr_number"),
        ({"pr_number": True}, "/pr_number"),
        ({"pr_number": 2**40}, "/pr_number"),
        ({"head_sha": "A" * 40}, "/head_sha"),
        ({"head_sha": "a" * 39}, "/head_sha"),
        ({"key": "victim-study"}, ""),  # the status key is never the artifact's to choose
        ({"schema": "mlaudit/publish-artifact/v1"}, "/schema"),
        ({"extra": 1}, ""),
    ],
)
def test_artifact_fields_are_validated(tmp_path, meta, pointer):
    directory = tmp_path / "art"
    write_artifact(directory, Handover(7, HEAD), _study(tmp_path))
    data = json.loads((directory / "publish.json").read_text())
    data.update(meta)
    (directory / "publish.json").write_text(json.dumps(data))
    with pytest.raises(ValidationFailed) as caught:
        read_artifact(directory, tmp_path / "private")
    assert any(p == pointer for p, _ in caught.value.problems)


def test_artifact_is_copied_and_only_known_names_are_read(tmp_path):
    directory = tmp_path / "art"
    write_artifact(directory, Handover(7, HEAD), _study(tmp_path))
    (directory / "report.md").write_text("## ✅ mlaudit: PASSED")
    (directory / "gate.json").write_text('{"passed": true}')
    handover, study = read_artifact(directory, tmp_path / "private")
    assert handover == Handover(7, HEAD)
    assert study.edd == tmp_path / "private" / "edd.yaml"
    assert study.checkpoint is None
    copied = sorted(p.relative_to(tmp_path / "private").as_posix()
                    for p in (tmp_path / "private").rglob("*") if p.is_file())  # fmt: skip
    assert copied == ["analysis.json", "approvals/alice.sig", "edd.yaml", "results.json"]


def test_artifact_symlink_and_size_are_refused(tmp_path):
    directory = tmp_path / "art"
    write_artifact(directory, Handover(7, HEAD), _study(tmp_path))
    edd = directory / "edd.yaml"
    edd.write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(InputError, match="larger than"):
        read_artifact(directory, tmp_path / "p1")
    edd.unlink()
    edd.symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="regular file"):
        read_artifact(directory, tmp_path / "p2")
    edd.unlink()
    edd.write_text("{}")
    (directory / "approvals" / "alice.sig").unlink()
    (directory / "approvals" / "alice.sig").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="regular file"):
        read_artifact(directory, tmp_path / "p3")


def test_the_fake_rejects_requests_that_break_the_openapi_description(repo):
    """The checks above can fail: a request GitHub would reject is recorded as a violation."""
    import requests

    url = f"{repo.api_url}/repos/{FULL_NAME}/statuses/{HEAD}"
    requests.post(
        url, json={"state": "green"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    requests.get(f"{repo.api_url}/repos/{FULL_NAME}/issues/seven/comments", timeout=5)
    assert any("'green' is not one of" in v for v in repo.violations)
    assert any("issue_number='seven' is not an integer" in v for v in repo.violations)
    repo.violations.clear()


def test_fake_responses_are_checked_against_the_description():
    from github_openapi import check_response

    problems = check_response("GET", f"/repos/{FULL_NAME}/pulls/7", 200, {"number": "7"})
    assert any("'url' is a required property" in p for p in problems)
    assert check_response("POST", f"/repos/{FULL_NAME}/check-runs", 418, None)


def test_retry_after_http_date_is_honoured(repo, clock, tmp_path):
    from email.utils import formatdate

    when = formatdate(clock.wall + 12, usegmt=True)
    repo.fail_next("GET /user", Fault(429, {"Retry-After": when}, {"message": "slow"}))
    run(repo, clock, tmp_path)
    assert 11.0 <= clock.sleeps[0] <= 12.0


def test_time_bound_covers_the_whole_publish(repo, clock, tmp_path):
    # Each request alone stays under the bound; together they exceed it.
    repo.fail_next("GET /user", Fault(429, {"Retry-After": "15"}, {"message": "slow"}))
    repo.fail_next(f"GET /repos/{FULL_NAME}/pulls/7", Fault(429, {"Retry-After": "15"}, None))
    with pytest.raises(PublishError, match="gave up within 20 s"):
        run(repo, clock, tmp_path, max_total=20)


def test_redirects_are_not_followed(repo, clock, tmp_path):
    repo.fail_next("GET /user", Fault(301, {"Location": "https://evil.example/user"}, None))
    with pytest.raises(PublishError, match="redirected"):
        run(repo, clock, tmp_path)


def test_netrc_cannot_replace_the_token(repo, clock, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text(
        "machine 127.0.0.1 login other password WRONG\nmachine localhost login o password WRONG\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    outcome = run(repo, clock, tmp_path)
    assert outcome.actions[0].action == "created"
