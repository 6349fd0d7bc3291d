"""`mlaudit report publish` via the CLI: environment in, fake GitHub on loopback, no token out."""

from __future__ import annotations

import json

import pytest
from gates import gate
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


def write_gate(path, *failing):
    document = gate(*failing).to_dict()
    path.write_text(json.dumps(document))
    return path


def test_publish_posts_the_gate_result_as_data(run_cli, ci, github, tmp_path):
    # The headline of this report says FAILED; the status says what gate.json says.
    gate_file = write_gate(tmp_path / "gate.json")
    result = run_cli("report", "publish", ci, "--gate", gate_file)
    assert result.exit_code == 0, result.stderr
    assert "comment: created" in result.stdout
    assert github.statuses[0]["state"] == "success"
    assert github.check_runs[0]["conclusion"] == "success"
    assert TOKEN not in result.stdout + result.stderr


def test_a_passed_headline_without_a_gate_is_never_a_success(run_cli, ci, github):
    ci.write_text(REPORT.replace("❌ mlaudit: FAILED", "✅ mlaudit: PASSED"))
    result = run_cli("report", "publish", ci)
    assert result.exit_code == 0, result.stderr
    assert "NOT GATED" in result.stdout
    assert github.statuses[0]["state"] == "error"
    assert github.statuses[0]["description"].startswith("NOT GATED")
    assert github.check_runs[0]["conclusion"] == "failure"


def test_publish_json_output(run_cli, ci):
    result = run_cli("report", "publish", ci, "--json")
    data = json.loads(result.stdout)
    assert data["pr_number"] == 7
    assert data["sha"] == HEAD
    assert [a["target"] for a in data["actions"]][:2] == ["comment", "status"]


def test_dry_run_writes_the_exact_requests_that_are_then_sent(
    run_cli, ci, github, monkeypatch, tmp_path
):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    gate_file = write_gate(tmp_path / "gate.json", "edd-verified")
    monkeypatch.delenv("GITHUB_TOKEN")
    result = run_cli("report", "publish", ci, "--gate", gate_file, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert github.log == []
    planned = json.loads(result.stdout)["requests"]
    to_file = run_cli("report", "publish", ci, "--gate", gate_file, "--dry-run",
                      "--requests", tmp_path / "requests.json")  # fmt: skip
    assert to_file.exit_code == 0, to_file.stderr
    assert json.loads((tmp_path / "requests.json").read_text())["requests"] == planned
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    sent = run_cli("report", "publish", ci, "--gate", gate_file)
    assert sent.exit_code == 0, sent.stderr
    received = [
        {"method": "POST", "path": f"/repos/{FULL_NAME}/issues/7/comments",
         "json": {"body": github.comments[7][0]["body"]}},
        {"method": "POST", "path": f"/repos/{FULL_NAME}/statuses/{HEAD}",
         "json": {k: v for k, v in github.statuses[0].items() if k != "sha"}},
        {"method": "POST", "path": f"/repos/{FULL_NAME}/check-runs",
         "json": github.check_runs[0]},
    ]  # fmt: skip
    assert planned == received
    assert planned[1]["json"]["state"] == "failure"
    assert "approvals (edd-verified)" in planned[1]["json"]["description"]


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


def test_artifact_modes_take_no_report_gate_or_key(run_cli, ci, tmp_path):
    for extra in ([ci], ["--gate", ci], ["--key", "victim"]):
        result = run_cli("report", "publish", "--from-artifact", tmp_path,
                         "--trust-ref", "HEAD", *extra)  # fmt: skip
        assert result.exit_code == 2
    result = run_cli("report", "publish", "--from-artifact", tmp_path)
    assert result.exit_code == 2
    assert "--trust-ref" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--edd", "x.yaml"], "go with --to-artifact"),
        (["--trust-ref", "main"], "go with --from-artifact"),
        (["--requests", "r.json"], "goes with --dry-run"),
    ],
)
def test_options_outside_their_mode_are_usage_errors(run_cli, ci, args, message):
    result = run_cli("report", "publish", ci, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_to_artifact_needs_the_documents(run_cli, ci, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    result = run_cli("report", "publish", "--to-artifact", tmp_path / "a", "--edd", ci)
    assert result.exit_code == 2
    assert "--to-artifact needs --edd, --results and --analysis" in result.stderr
