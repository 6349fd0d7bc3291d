"""`mlaudit report publish` via the CLI: environment in, fake GitHub on loopback, no token out."""

from __future__ import annotations

import json

import pytest
from github_fake import FULL_NAME, Fault

HEAD = "a" * 40
TOKEN = "ghp_CLIsecretTOKEN0123456789abcdef"
REPORT = (
    "## ❌ mlaudit: FAILED — toy-study v1: 1 of 2 signed claims shown.\n\n"
    "Evidence.\n\n<!-- mlaudit:report key=toy-study -->\n"
)


@pytest.fixture
def ci(github, monkeypatch, tmp_path):
    github.tokens[TOKEN] = {"login": "mlaudit-bot", "id": 77}
    github.add_pull(7, HEAD)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": HEAD}}}))
    for name in ("GITLAB_CI", "GH_TOKEN", "MLAUDIT_GITHUB_TOKEN", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": github.api_url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": FULL_NAME,
        "GITHUB_SHA": "c" * 40,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_NUMBER": "4",
        "GITHUB_TOKEN": TOKEN,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    report = tmp_path / "report.md"
    report.write_text(REPORT)
    return report


def test_publish_posts_and_reports_actions(run_cli, ci, github):
    result = run_cli("report", "publish", ci)
    assert result.exit_code == 0, result.stderr
    assert "comment: created" in result.stdout
    assert github.statuses[0]["state"] == "failure"
    assert TOKEN not in result.stdout + result.stderr


def test_publish_json_output(run_cli, ci):
    result = run_cli("report", "publish", ci, "--json")
    data = json.loads(result.stdout)
    assert data["pr_number"] == 7
    assert data["sha"] == HEAD
    assert [a["target"] for a in data["actions"]][:2] == ["comment", "status"]


def test_dry_run_needs_no_token_and_sends_nothing(run_cli, ci, github, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    result = run_cli("report", "publish", ci, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert github.log == []
    data = json.loads(result.stdout)
    assert data["actions"][0]["request"]["body"]["first_line"].startswith("## ❌ mlaudit: FAILED")


def test_missing_token_names_the_variable(run_cli, ci, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    result = run_cli("report", "publish", ci)
    assert result.exit_code == 1
    assert "GITHUB_TOKEN" in result.stderr


def test_failure_message_never_shows_the_token(run_cli, ci, github):
    github.fail_next("GET /user", Fault(502, {}, {"message": f"echo {TOKEN}"}))
    result = run_cli("report", "publish", ci, "--max-wait", "0")
    assert result.exit_code == 1
    assert "gave up" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_not_an_mlaudit_report_is_refused(run_cli, ci, tmp_path):
    other = tmp_path / "other.md"
    other.write_text("# hello\n")
    result = run_cli("report", "publish", other)
    assert result.exit_code == 2
    assert "not an mlaudit Markdown report" in result.stderr


def test_two_stage_fork_flow(run_cli, ci, github, tmp_path, monkeypatch):
    artifact = tmp_path / "artifact"
    # Stage 1: the unprivileged pull_request job, no token.
    monkeypatch.delenv("GITHUB_TOKEN")
    staged = run_cli("report", "publish", ci, "--to-artifact", artifact)
    assert staged.exit_code == 0, staged.stderr
    assert github.log == []
    meta = json.loads((artifact / "publish.json").read_text())
    assert meta == {
        "schema": "mlaudit/publish-artifact/v1",
        "pr_number": 7,
        "head_sha": HEAD,
        "key": "toy-study",
    }
    # Stage 2: the privileged workflow_run job (its own event has no pull_request).
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    (tmp_path / "event.json").write_text(json.dumps({"workflow_run": {"id": 1}}))
    posted = run_cli("report", "publish", "--from-artifact", artifact)
    assert posted.exit_code == 0, posted.stderr
    assert github.comments[7]


def test_forged_artifact_pr_number_is_refused_by_the_cli(
    run_cli, ci, github, tmp_path, monkeypatch
):
    github.add_pull(8, "f" * 40)
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "report.md").write_text(REPORT)
    (artifact / "publish.json").write_text(
        json.dumps({"schema": "mlaudit/publish-artifact/v1", "pr_number": 8, "head_sha": HEAD})
    )
    result = run_cli("report", "publish", "--from-artifact", artifact)
    assert result.exit_code == 1
    assert "refusing to publish" in result.stderr
    assert not github.comments
    assert not github.statuses
