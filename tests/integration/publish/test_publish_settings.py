"""Settings from the CI environment, the body helpers and the race rule (no network)."""

from __future__ import annotations

import json

import pytest

from audit.errors import UsageError
from audit.publish.body import fit_body
from audit.publish.outcome import existing_is_newer
from audit.publish.settings import Secret, settings_from_environment
from audit.report.budget import BUDGETS, SizeBudget
from audit.report.marker import Marker

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "octo/demo", "GITHUB_SHA": "a" * 40,
          "GITHUB_TOKEN": "ghp_x"}  # fmt: skip


def test_github_com_defaults():
    settings = settings_from_environment(GITHUB)
    assert settings.platform == "github"
    assert settings.api_url == "https://api.github.com"
    assert settings.server_url == "https://github.com"
    assert "ghp_x" not in repr(settings)


def test_github_enterprise_server_urls():
    settings = settings_from_environment(
        GITHUB | {"GITHUB_API_URL": "https://ghe.corp.example/api/v3",
                  "GITHUB_SERVER_URL": "https://ghe.corp.example", "GITHUB_RUN_ID": "9"}
    )  # fmt: skip
    assert settings.api_url == "https://ghe.corp.example/api/v3"
    assert settings.job_url == "https://ghe.corp.example/octo/demo/actions/runs/9"


def test_gitlab_self_managed():
    settings = settings_from_environment({
        "GITLAB_CI": "true", "CI_API_V4_URL": "https://git.corp.example/gitlab/api/v4",
        "CI_PROJECT_ID": "12", "CI_COMMIT_SHA": "b" * 40, "CI_MERGE_REQUEST_IID": "4",
        "MLAUDIT_GITLAB_TOKEN": "glpat-x"})  # fmt: skip
    assert settings.platform == "gitlab"
    assert settings.server_url == "https://git.corp.example/gitlab"
    assert settings.pr_number == 4
    assert settings.token_variable == "MLAUDIT_GITLAB_TOKEN"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "not running in GitHub Actions or GitLab CI"),
        (GITHUB | {"GITHUB_REPOSITORY": "../x"}, "GITHUB_REPOSITORY"),
        (GITHUB | {"GITHUB_API_URL": "https://u:p@api.example"}, "GITHUB_API_URL"),
        ({"GITLAB_CI": "true", "CI_PROJECT_ID": "group/x"}, "CI_PROJECT_ID"),
    ],
)
def test_bad_environment_is_a_usage_error(env, message):
    with pytest.raises(UsageError, match=message):
        settings_from_environment(env)


def test_event_payload_with_hostile_values_is_ignored(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": "7; rm", "head": {"sha": "zz"}}}))
    settings = settings_from_environment(GITHUB | {"GITHUB_EVENT_PATH": str(event)})
    assert settings.pr_number is None
    assert settings.sha == "a" * 40


def test_secret_never_prints():
    secret = Secret("tok")
    assert "tok" not in repr(secret) + str(secret) + f"{secret}"
    assert secret.scrub("x tok y") == "x *** y"


def test_fit_body_cuts_outside_details_and_fences():
    blocks = ["## ✅ mlaudit: PASSED — s v1: ok"]
    blocks += [f"<details>\n<summary>{i}</summary>\n\n{'y' * 300}\n\n{'z' * 300}\n\n</details>"
               for i in range(20)]  # fmt: skip
    blocks += ["```\ncode\n\nmore code\n```"] * 5
    text = "\n\n".join(blocks) + "\n\n" + Marker("s").render() + "\n"
    budget = SizeBudget("t", 5000, "chars", "test")
    cut = fit_body(text, budget, "POINTER")
    assert len(cut) <= 5000
    assert cut.count("<details>") == cut.count("</details>")
    assert cut.count("```") % 2 == 0
    assert cut.rstrip().endswith(Marker("s").render())
    assert "POINTER" in cut
    assert fit_body("short", BUDGETS["github-comment"], "P") == "short"


def test_fit_body_never_cuts_inside_indented_or_long_fences():
    # Fences a line scanner gets wrong: four backticks holding a three-backtick line,
    # and an indented code block. The CommonMark parser knows where each ends.
    blocks = ["## heading"]
    blocks += ["````\n```\n\n" + "x\n\n" * 400 + "````"] * 3
    blocks += ["    indented code\n\n    " + "y" * 200] * 6
    text = "\n\n".join(blocks) + "\n\n" + Marker("s").render() + "\n"
    budget = SizeBudget("t", 1500, "chars", "test")
    cut = fit_body(text, budget, "POINTER")
    assert len(cut) <= 1500
    head = cut.split("\n\nPOINTER")[0]
    assert head.count("````") % 2 == 0
    assert head in text


@pytest.mark.parametrize(
    ("existing", "ours", "head", "newer"),
    [
        (Marker("k", sha="a" * 40), Marker("k", sha="b" * 40), "a" * 40, True),
        (Marker("k", sha="b" * 40), Marker("k", sha="a" * 40), "a" * 40, False),
        (Marker("k", sha="a" * 40, run=5), Marker("k", sha="a" * 40, run=4), "a" * 40, True),
        (Marker("k", sha="a" * 40, run=4), Marker("k", sha="a" * 40, run=5), "a" * 40, False),
        (Marker("k", sha="a" * 40, run=4, timestamp="2026-01-02T00:00:00Z"),
         Marker("k", sha="a" * 40, run=4, timestamp="2026-01-01T00:00:00Z"), None, True),
        (Marker("k"), Marker("k", sha="a" * 40, run=1), None, False),
    ],
)  # fmt: skip
def test_race_rule(existing, ours, head, newer):
    assert existing_is_newer(existing, ours, head) is newer
