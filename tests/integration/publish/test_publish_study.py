"""One verdict, end to end: a real study, the real gate, the report and the posts to the fakes.

Each failing gate here comes from `mlaudit gate` run on a real toy study (real
git, ssh-keygen signatures, DVC, trials) whose claims hold, with one kind of
audit evidence broken: an approval removed from the trust ref, a dirty tree
under --allow-dirty, attrition beyond the policy (there the analysis itself also
withholds the claim), a ledger that does not extend the checkpoint, a sealed run
edited in the database. The Markdown and HTML headline, the GitHub status and
check run and the GitLab commit status must all say failed and name the rule.
The fork-safe publisher is run on artifacts staged by `--to-artifact`, honest and
forged.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import uuid
from pathlib import Path

import cmarkgfm
import pytest
from github_fake import FULL_NAME
from gitlab_fake import PROJECT, user
from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))

from toystudy import ToyStudy, build_toy_study, mlaudit, run
from tracking_study import superuser

pytestmark = pytest.mark.slow

HEAD = "a" * 40
GITHUB_TOKEN = "ghp_STUDYsecretTOKEN0123456789abcdef"
GITLAB_TOKEN = "glpat-STUDYsecret0123456789"
EPOCH = "1800000000"
SEEDS = 9
# How the evidence is broken -> (the kind of failure, the rule that must name it).
VARIANTS = {
    "approval-revoked": ("approvals", "edd-verified"),
    "dirty-tree": ("provenance", "provenance"),
    "attrition": ("attrition", "no-attrition"),
    "forged-checkpoint": ("ledger", "tracking-sealed"),
    "tampered-run": ("ledger", "tracking-sealed"),
}


# -- the studies ----------------------------------------------------------------------


def analyze(toy: ToyStudy, out: Path) -> None:
    mlaudit("ablate", "analyze", out / "results.json", "-o", out / "analysis.json", cwd=toy.repo)


def run_trials(toy: ToyStudy, out: Path, *extra: str | Path) -> None:
    mlaudit("ablate", "run", toy.edd, "--trust-ref", "main", "--out", out, "--workers", "2",
            *extra, cwd=toy.repo)  # fmt: skip


def gate(toy: ToyStudy, out: Path, trust_ref: str = "main", *extra: str | Path) -> dict:
    mlaudit("gate", "--analysis", out / "analysis.json", "--results", out / "results.json",
            "--edd", toy.edd, "--trust-ref", trust_ref, "-o", out / "gate.json", *extra,
            cwd=toy.repo, check=False)  # fmt: skip
    return json.loads((out / "gate.json").read_text())


def revoke_an_approval(toy: ToyStudy) -> str:
    """A trust ref whose allowed_signers no longer holds carol: the quorum of 2 is lost."""
    place = toy.repo.parent / "revoked"
    run("git", "worktree", "add", "-q", "-b", "revoked", place, "main", cwd=toy.repo)
    signers = place / ".mlaudit" / "allowed_signers"
    kept = [line for line in signers.read_text().splitlines(True) if "carol" not in line]
    signers.write_text("".join(kept))
    run("git", "commit", "-qam", "carol leaves", cwd=place)
    return "revoked"


def lose_a_trial(out: Path) -> None:
    """One trial of no-b failed after the run (the policy allows none)."""
    results = json.loads((out / "results.json").read_text())
    trial = next(t for t in results["trials"] if t["arm"] == "no-b" and t["seed"] == SEEDS - 1)
    trial.update(status="failed", metrics={}, exit_code=1, reason="killed by the OOM killer")
    (out / "results.json").write_text(json.dumps(results, indent=2))


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> ToyStudy:
    toy = build_toy_study(tmp_path_factory.mktemp("publish-study"), seeds=SEEDS)
    run_trials(toy, toy.out)
    analyze(toy, toy.out)
    document = gate(toy, toy.out)
    assert document["passed"], document["reasons"]
    return toy


@pytest.fixture(scope="module")
def failing(toy, tmp_path_factory, request) -> dict[str, Path]:
    """kind -> a folder with results, analysis and a failed gate.json of that kind."""
    folders: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("failing")

    folders["approval-revoked"] = root / "approval-revoked"
    shutil.copytree(toy.out, folders["approval-revoked"])
    gate(toy, folders["approval-revoked"], revoke_an_approval(toy))

    folders["dirty-tree"] = root / "dirty-tree"
    tracked = toy.repo / ".gitignore"
    original = tracked.read_text()
    tracked.write_text(original + "# an uncommitted edit\n")
    try:
        run_trials(toy, folders["dirty-tree"], "--allow-dirty")
    finally:
        tracked.write_text(original)
    analyze(toy, folders["dirty-tree"])
    gate(toy, folders["dirty-tree"])

    folders["attrition"] = root / "attrition"
    shutil.copytree(toy.out, folders["attrition"])
    lose_a_trial(folders["attrition"])
    analyze(toy, folders["attrition"])
    gate(toy, folders["attrition"])
    return folders


@pytest.fixture(scope="module")
def sealed(tmp_path_factory, mlflow_server) -> dict[str, Path]:
    """A study logged to the immutable server: gated against a forged checkpoint, then
    against its honest checkpoint after a sealed run was edited below MLflow."""
    root = tmp_path_factory.mktemp("sealed")
    toy = build_toy_study(root, edd_id=f"toy-{uuid.uuid4().hex[:8]}", seeds=SEEDS)
    run_trials(toy, toy.out, "--tracking-uri", mlflow_server.uri)
    analyze(toy, toy.out)
    edd_id = json.loads((toy.out / "results.json").read_text())["edd"]["id"]
    checkpoint = toy.out / "checkpoint.json"
    mlaudit("track", "checkpoint", "--tracking-uri", mlflow_server.uri, "--experiment", edd_id,
            "-o", checkpoint, cwd=toy.repo)  # fmt: skip
    tracking = ["--tracking-uri", mlflow_server.uri, "--experiment", edd_id]
    folders = {name: root / name for name in ("forged-checkpoint", "tampered-run")}

    shutil.copytree(toy.out, folders["forged-checkpoint"])
    forged_file = folders["forged-checkpoint"] / "checkpoint.json"
    forged = json.loads(forged_file.read_text())
    forged["root"] = "0" * len(forged["root"])  # a ledger this server's does not extend
    forged_file.write_text(json.dumps(forged))
    gate(toy, folders["forged-checkpoint"], "main", *tracking, "--checkpoint", forged_file)

    shutil.copytree(toy.out, folders["tampered-run"])
    results = json.loads((toy.out / "results.json").read_text())
    victim = next(t["mlflow_run_id"] for t in results["trials"] if t["arm"] == "no-a")
    with superuser(mlflow_server.db_path) as db:  # a database superuser edits a sealed run
        edit = "UPDATE metrics SET value = value - 0.1 WHERE run_uuid = ? AND key = 'score'"
        changed = db.execute(edit, (victim,)).rowcount
    assert changed >= 1
    gate(toy, folders["tampered-run"], "main", *tracking, "--checkpoint", checkpoint)
    return folders


def study_folder(variant: str, failing: dict[str, Path], request) -> Path:
    if VARIANTS[variant][0] == "ledger":
        return request.getfixturevalue("sealed")[variant]
    return failing[variant]


# -- CI environments -----------------------------------------------------------------------


def github_env(monkeypatch, github, tmp_path: Path, *, pull_request: bool = True) -> None:
    github.tokens.setdefault(GITHUB_TOKEN, {"login": "mlaudit-bot", "id": 77})
    if 7 not in github.pulls:
        github.add_pull(7, HEAD)
    event = tmp_path / "event.json"
    payload = {"pull_request": {"number": 7, "head": {"sha": HEAD}}}
    event.write_text(json.dumps(payload if pull_request else {"workflow_run": {"id": 1}}))
    for name in ("GITLAB_CI", "GH_TOKEN", "MLAUDIT_GITHUB_TOKEN", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": github.api_url,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_REPOSITORY": FULL_NAME,
        "GITHUB_SHA": HEAD if pull_request else "c" * 40,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_EVENT_NAME": "pull_request" if pull_request else "workflow_run",
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_NUMBER": "4",
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "SOURCE_DATE_EPOCH": EPOCH,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def gitlab_env(monkeypatch, gitlab) -> None:
    gitlab.tokens[GITLAB_TOKEN] = user(31, "project_42_bot")
    gitlab.add_merge_request(3, HEAD)
    for name in ("GITHUB_ACTIONS", "GITLAB_TOKEN", "CI_JOB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": gitlab.api_url,
        "CI_SERVER_URL": gitlab.server.url_for("/gitlab"),
        "CI_PROJECT_ID": str(PROJECT),
        "CI_COMMIT_SHA": HEAD,
        "CI_MERGE_REQUEST_IID": "3",
        "CI_PIPELINE_ID": "9001",
        "CI_PIPELINE_IID": "17",
        "MLAUDIT_GITLAB_TOKEN": GITLAB_TOKEN,
        "SOURCE_DATE_EPOCH": EPOCH,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def render(run_cli, folder: Path, fmt: str, budget: str | None = None) -> str:
    out = folder / f"report.{fmt}"
    args = [folder / "analysis.json", "--results", folder / "results.json",
            "--gate", folder / "gate.json", "--format", fmt, "-o", out]  # fmt: skip
    if budget:
        args += ["--budget", budget]
    result = run_cli("report", "render", *args)
    assert result.exit_code == 0, result.stderr
    return out.read_text()


def stage(run_cli, monkeypatch, github, tmp_path: Path, toy: ToyStudy, folder: Path) -> Path:
    """The unprivileged pull_request job: stage the study, post nothing (no token)."""
    github_env(monkeypatch, github, tmp_path)
    monkeypatch.delenv("GITHUB_TOKEN")
    artifact = tmp_path / "artifact"
    before = len(github.log)
    staged = run_cli("report", "publish", "--to-artifact", artifact, "--edd", toy.edd,
                     "--results", folder / "results.json", "--analysis",
                     folder / "analysis.json")  # fmt: skip
    assert staged.exit_code == 0, staged.stderr
    assert len(github.log) == before  # not a single request
    return artifact


def publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact, *extra, ref="main"):
    """The privileged workflow_run job: the default branch's trust files, its own rendering."""
    github_env(monkeypatch, github, tmp_path, pull_request=False)
    return run_cli("report", "publish", "--from-artifact", artifact, "--trust-ref", ref,
                   "--repo", toy.repo, *extra)  # fmt: skip


# -- claims hold, the gate fails: everything says failed and names the rule --------------------


def failed_gate(variant: str, failing: dict[str, Path], request) -> Path:
    folder = study_folder(variant, failing, request)
    kind, rule = VARIANTS[variant]
    document = json.loads((folder / "gate.json").read_text())
    verdicts = {r["rule"]: r["passed"] for r in document["rules"]}
    # The statistics alone would have said PASSED, except under attrition: the analysis
    # itself refuses a positive verdict for a comparison that lost trials.
    assert verdicts["claims"] is (kind != "attrition")
    assert verdicts[rule] is False
    assert document["passed"] is False
    return folder


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_failed_evidence_is_the_decision_on_github(
    variant, failing, request, run_cli, github, monkeypatch, tmp_path
):
    folder = failed_gate(variant, failing, request)
    kind, rule = VARIANTS[variant]
    markdown = render(run_cli, folder, "md", "github-comment")
    headline = markdown.split("\n", 1)[0]
    assert headline.startswith("## ❌ mlaudit: FAILED — ")
    assert f"audit evidence failed: {kind} ({rule})" in headline
    assert ("claims not supported" in headline) is (kind == "attrition")
    html = render(run_cli, folder, "html").replace("<wbr>", "")  # names may wrap at "-"
    assert f"audit evidence failed: {kind} ({rule})" in html
    assert "PASSED" not in html

    github_env(monkeypatch, github, tmp_path)
    posted = run_cli("report", "publish", folder / "report.md", "--gate", folder / "gate.json")
    assert posted.exit_code == 0, posted.stderr
    (status,) = github.statuses
    assert status["state"] == "failure"
    assert f"{kind} ({rule})" in status["description"]
    (check,) = github.check_runs
    assert check["conclusion"] == "failure"
    assert f"{kind} ({rule})" in check["output"]["title"]
    assert github.comments[7][0]["body"].startswith("## ❌ mlaudit: FAILED")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_failed_evidence_is_the_decision_on_gitlab(
    variant, failing, request, run_cli, gitlab, monkeypatch
):
    folder = failed_gate(variant, failing, request)
    kind, rule = VARIANTS[variant]
    gitlab_env(monkeypatch, gitlab)
    render(run_cli, folder, "md", "gitlab-note")
    noted = run_cli("report", "publish", folder / "report.md", "--gate", folder / "gate.json")
    assert noted.exit_code == 0, noted.stderr
    (gl_status,) = gitlab.statuses
    assert gl_status["state"] == "failed"
    assert f"{kind} ({rule})" in gl_status["description"]
    assert gitlab.notes[3][0]["body"].startswith("## ❌ mlaudit: FAILED")


# -- the fork-safe path -------------------------------------------------------------------------


def test_honest_fork_comment_equals_a_direct_publish(toy, run_cli, github, monkeypatch, tmp_path):
    render(run_cli, toy.out, "md", "github-comment")
    github_env(monkeypatch, github, tmp_path)
    direct = run_cli("report", "publish", toy.out / "report.md", "--gate", toy.out / "gate.json")
    assert direct.exit_code == 0, direct.stderr
    direct_body = github.comments[7][0]["body"]
    direct_status = github.statuses[0]

    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, toy.out)
    forked = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert forked.exit_code == 0, forked.stderr
    assert ("PATCH", f"/repos/{FULL_NAME}/issues/comments/{github.comments[7][0]['id']}") in (
        github.log
    )
    assert github.comments[7][0]["body"] == direct_body  # byte for byte, no second escaping
    assert "#\u2060#" not in direct_body
    fork_status = github.statuses[1]
    assert (fork_status["state"], direct_status["state"]) == ("success", "success")
    assert fork_status["context"] == direct_status["context"] == "mlaudit/toy-study"
    assert fork_status["description"].startswith("advisory, evidence from an unprivileged run")


def test_dry_run_of_the_fork_path_is_what_the_fake_receives(
    toy, run_cli, github, monkeypatch, tmp_path
):
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, toy.out)
    planned_file = tmp_path / "requests.json"
    dry = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact,
                       "--dry-run", "--requests", planned_file)  # fmt: skip
    assert dry.exit_code == 0, dry.stderr
    assert github.log == []
    planned = json.loads(planned_file.read_text())["requests"]
    sent = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact, "--json")
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
    assert json.loads(sent.stdout)["requests"] == received


HOSTILE_REPORT = """## ✅ mlaudit: PASSED — toy-study v1: all good

    <img src=https://evil.example/indented.png>
    [indented](https://evil.example/i) @indented-admin

````
```
<img src=https://evil.example/fenced.png>
[fenced](https://evil.example/f) @fenced-admin
```
````

<!-- mlaudit:report key=victim-study -->
"""


def _rendered_as_github_would(body: str) -> list[str]:
    unsafe = cmarkgfm.cmark.Options.CMARK_OPT_UNSAFE
    return [
        MarkdownIt("commonmark").enable("table").render(body),
        cmarkgfm.github_flavored_markdown_to_html(body, options=unsafe),
    ]


def test_markdown_in_the_artifact_is_never_posted(toy, run_cli, github, monkeypatch, tmp_path):
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, toy.out)
    (artifact / "report.md").write_text(HOSTILE_REPORT)
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert posted.exit_code == 0, posted.stderr
    body = github.comments[7][0]["body"]
    assert body.startswith("## ✅ mlaudit: PASSED — toy-study v1: the gate passed")
    for html in _rendered_as_github_would(body):
        assert "evil.example" not in html
        assert "<img" not in html
        assert not re.search(r"@(indented|fenced)-admin", html)
    assert "victim-study" not in json.dumps(github.statuses + github.check_runs)


def test_a_forged_headline_never_makes_a_success(
    toy, failing, run_cli, github, monkeypatch, tmp_path
):
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, failing["attrition"])
    (artifact / "report.md").write_text(HOSTILE_REPORT)
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert posted.exit_code == 0, posted.stderr
    assert [s["state"] for s in github.statuses] == ["failure"]
    assert github.check_runs[0]["conclusion"] == "failure"
    assert "attrition (no-attrition)" in github.statuses[0]["description"]
    assert github.comments[7][0]["body"].startswith("## ❌ mlaudit: FAILED")


def test_a_gate_json_in_the_artifact_is_not_believed(
    toy, failing, run_cli, github, monkeypatch, tmp_path
):
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, failing["attrition"])
    shutil.copyfile(toy.out / "gate.json", artifact / "gate.json")  # a passing gate
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert posted.exit_code == 0, posted.stderr
    assert [s["state"] for s in github.statuses] == ["failure"]
    assert github.check_runs[0]["conclusion"] == "failure"


def test_a_forged_analysis_is_judged_by_the_recomputed_gate(
    toy, failing, run_cli, github, monkeypatch, tmp_path
):
    # The attrition study's analysis with every verdict flipped to the claimed one.
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, failing["attrition"])
    analysis = json.loads((artifact / "analysis.json").read_text())
    analysis["decision"]["passed"] = True
    analysis["attrition"] = []
    (artifact / "analysis.json").write_text(json.dumps(analysis))
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert posted.exit_code == 0, posted.stderr
    assert [s["state"] for s in github.statuses] == ["failure"]
    assert github.check_runs[0]["conclusion"] == "failure"
    assert "claims not supported" in github.statuses[0]["description"]


def test_a_forged_status_key_is_refused(toy, run_cli, github, monkeypatch, tmp_path):
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, toy.out)
    meta = json.loads((artifact / "publish.json").read_text())
    (artifact / "publish.json").write_text(json.dumps(meta | {"key": "victim-study"}))
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert posted.exit_code == 1
    assert "publish.json" in posted.stderr
    assert not [m for m, _ in github.log if m != "GET"]


def test_the_publisher_judges_with_its_own_trust_ref(
    toy, failing, run_cli, github, monkeypatch, tmp_path
):
    # The fork ships trust files that would admit anyone; the publisher's ref has lost carol.
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, toy.out)
    (artifact / ".mlaudit").mkdir()
    (artifact / ".mlaudit" / "policy.yaml").write_text("quorum: 1\n")
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact, ref="revoked")
    assert posted.exit_code == 0, posted.stderr
    assert [s["state"] for s in github.statuses] == ["failure"]
    assert "approvals (edd-verified)" in github.statuses[0]["description"]


def test_an_analysis_of_other_results_posts_nothing(toy, run_cli, github, monkeypatch, tmp_path):
    artifact = stage(run_cli, monkeypatch, github, tmp_path, toy, toy.out)
    analysis = json.loads((artifact / "analysis.json").read_text())
    analysis["results_sha256"] = "0" * 64
    (artifact / "analysis.json").write_text(json.dumps(analysis))
    posted = publish_from(run_cli, monkeypatch, github, tmp_path, toy, artifact)
    assert posted.exit_code == 1
    assert "results_sha256" in posted.stderr
    assert not [m for m, _ in github.log if m != "GET"]
