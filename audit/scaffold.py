"""`mlaudit init`'s core: turn answers about a training script into a project's audit files.

Writes an EDD skeleton (checked by the same schema and semantic rules as `edd
validate`), the trust files, the .gitignore entries and the CI files, and says what is
left to do. Never overwrites a file unless told to (`force`); .gitignore is only ever
appended to. Never prints and never reads argv: the CLI asks the questions.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from audit.edd.load import schema_problems
from audit.edd.safe_yaml import parse_yaml_bytes
from audit.edd.semantics import semantic_problems
from audit.errors import UsageError, ValidationFailed
from audit.provenance.git import repo_root

SCHEMA_URL = "https://mlaudit.dev/schemas/edd.schema.json"
OVERRIDES = "{overrides}"
# What runs write and must never be committed (the dirty-tree check skips ignored paths).
GITIGNORE_ENTRIES = (
    "/out/",
    "/.mlaudit-out/",
    "/.mlaudit/cache/",
    "/.mlaudit-spool/",
    "/mlruns/",
    "/mlartifacts/",
)
CI_CHOICES = ("github", "gitlab", "none")


@dataclass(frozen=True)
class Component:
    name: str
    ablate: tuple[str, ...]  # key=value overrides that switch it off


@dataclass(frozen=True)
class Approver:
    principal: str
    public_key: str | None = None  # `ssh-ed25519 AAAA...`; None leaves a template line


@dataclass
class Answers:
    """Everything `init` needs to know about the project; the CLI fills it."""

    command: list[str]
    baseline: dict[str, Any]
    components: list[Component]
    primary: str
    goal: str = "maximize"
    secondary: list[tuple[str, str]] = field(default_factory=list)  # (name, goal)
    claims: dict[str, str] = field(default_factory=dict)  # component -> spec
    data: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    approvers: list[Approver] = field(default_factory=list)
    study_id: str = "my-study"
    title: str = "Ablation study"
    hypothesis: str = "Each component improves the primary metric."
    seeds: int = 10
    exclude_from_rerun: list[str] = field(default_factory=list)
    ci: str = "none"
    edd_name: str = "edd.yaml"
    trust_ref: str = "main"


@dataclass(frozen=True)
class PlannedFile:
    path: Path  # relative to the project folder
    content: str
    append: bool = False  # .gitignore: add missing lines only


@dataclass
class InitResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # existed; not overwritten
    appended: list[Path] = field(default_factory=list)
    checklist: list[str] = field(default_factory=list)


# -- parsing what a person types --------------------------------------------------------


def parse_command(text: str) -> list[str]:
    """`python train.py` -> argv with `{overrides}` last (the arm's key=value items go there)."""
    argv = shlex.split(text)
    if not argv:
        raise UsageError("the training command is empty")
    return argv if OVERRIDES in argv else [*argv, OVERRIDES]


def parse_assignment(text: str, what: str) -> tuple[str, Any]:
    """`model.depth=3` -> ("model.depth", 3): the value read as YAML 1.2 (mlaudit's reader)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{what} {text!r} is not KEY=VALUE")
    value = parse_yaml_bytes(raw.encode("utf-8"), what).value if raw.strip() else ""
    return key.strip(), value


def parse_baseline(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE items (dotted keys nest) -> the baseline config mapping."""
    baseline: dict[str, Any] = {}
    for item in items:
        key, value = parse_assignment(item, "--baseline")
        node = baseline
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--baseline {item!r}: {part!r} is already a value")
            node = child
        node[leaf] = value
    return baseline


def parse_component(text: str) -> Component:
    """`augment:data.augment=false model.x=1` -> Component("augment", (...))."""
    name, sep, overrides = text.partition(":")
    if not sep or not overrides.split():
        raise UsageError(
            f"--component {text!r} is not NAME:KEY=VALUE [KEY=VALUE...] (the overrides that "
            "switch the component off)"
        )
    return Component(name.strip(), tuple(overrides.split()))


def parse_metric(text: str, default_goal: str) -> tuple[str, str]:
    """`log_loss:minimize` -> ("log_loss", "minimize"); the goal defaults to `default_goal`."""
    name, _, goal = text.partition(":")
    goal = goal or default_goal
    if goal not in ("maximize", "minimize"):
        raise UsageError(f"metric {text!r}: the goal is maximize or minimize, not {goal!r}")
    return name, goal


def parse_approver(text: str) -> Approver:
    """`alice@x` or `alice@x=~/.ssh/id_ed25519.pub` (the public key file to trust)."""
    principal, sep, key_file = text.partition("=")
    if not sep:
        return Approver(principal)
    path = Path(key_file).expanduser()
    try:
        fields = path.read_text(encoding="utf-8").split()
    except OSError as error:
        raise UsageError(f"--approver {text!r}: cannot read {path}: {error.strerror}") from None
    if len(fields) < 2:
        raise UsageError(f"--approver {text!r}: {path} is not an SSH public key")
    return Approver(principal, f"{fields[0]} {fields[1]}")


# -- the EDD ------------------------------------------------------------------------------


def _claim(target: str, spec: str) -> dict[str, Any]:
    """`improves`, `improves:0.005`, `non-inferior:0.01` -> a claim about `target`."""
    kind, _, number = spec.partition(":")
    claim: dict[str, Any] = {"target": target, "claim": kind}
    if kind == "non-inferior":
        claim["margin"] = float(number) if number else 0.01
    elif kind == "improves":
        if number:
            claim["min_effect"] = float(number)
    else:
        raise UsageError(f"claim {spec!r} for {target!r}: improves[:MIN] or non-inferior:MARGIN")
    return claim


def edd_document(answers: Answers, *, now: datetime | None = None) -> dict[str, Any]:
    """The EDD as data; `edd validate` must accept it (checked by `check_document`)."""
    seeds = list(range(answers.seeds))
    arms = 1 + len(answers.components)
    not_after = (now or datetime.now(timezone.utc)) + timedelta(days=90)
    metrics: dict[str, Any] = {"primary": {"name": answers.primary, "goal": answers.goal}}
    if answers.secondary:
        metrics["secondary"] = [{"name": n, "goal": g} for n, g in answers.secondary]
    reproducibility: dict[str, Any] = {"arm": "baseline", "seed": 0, "tolerance": {"abs": 1e-9}}
    if answers.exclude_from_rerun:
        reproducibility["exclude"] = list(answers.exclude_from_rerun)
    return {
        "schema_version": 1,
        "id": answers.study_id,
        "version": 1,
        "title": answers.title,
        "owners": list(answers.owners),
        "hypothesis": answers.hypothesis,
        "risk_tier": "medium",
        "data": [{"path": path} for path in answers.data],
        "protocol": {
            "command": list(answers.command),
            "baseline": answers.baseline,
            "components": [{"name": c.name, "ablate": list(c.ablate)} for c in answers.components],
            "design": "leave-one-out",
            "seeds": seeds,
        },
        "metrics": metrics,
        "decision": {
            "alpha": 0.05,
            "correction": "holm",
            "claims": [
                _claim(c.name, answers.claims.get(c.name, "improves")) for c in answers.components
            ],
        },
        "budget": {
            # Room for the re-run and one retry of every arm, no more: the budget is signed.
            "max_trials": arms * len(seeds) + 1 + arms,
            "max_wall_minutes": 120,
            "trial_timeout_seconds": 1800,
        },
        "reproducibility": reproducibility,
        "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def check_document(document: dict[str, Any], file: str) -> None:
    """The rules `edd validate` applies; ValidationFailed names each problem."""
    problems = schema_problems(document, "edd") or semantic_problems(document)
    if problems:
        raise ValidationFailed(file, problems)


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (`seeds: [0, 1, 2]`), the rest as blocks."""


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def edd_text(document: Mapping[str, Any], schema_ref: str = SCHEMA_URL) -> str:
    body = yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return (
        f"# yaml-language-server: $schema={schema_ref}\n"
        "# Written by `mlaudit init`. Edit the hypothesis, claims and budget, then have the\n"
        "# approvers sign it (`mlaudit edd sign`). Any change afterwards needs new signatures.\n"
        f"{body}"
    )


# -- trust files, .gitignore, CI ----------------------------------------------------------


def policy_text(answers: Answers) -> str:
    return (
        "# Who must approve an EDD (read from the protected base branch, never from a PR).\n"
        "# See schemas/policy.schema.json: quorum, roles, required_roles, min_seeds.\n"
        "quorum: 1\n"
        f"min_seeds: {min(answers.seeds, 5)}\n"
    )


def allowed_signers_text(answers: Answers) -> str:
    lines = [
        '# One line per approver: PRINCIPAL namespaces="mlaudit-edd" KEYTYPE KEY',
        "# (the public key from `ssh-keygen -t ed25519 -C PRINCIPAL -f KEYFILE`, KEYFILE.pub).",
    ]
    for approver in answers.approvers:
        entry = f'{approver.principal} namespaces="mlaudit-edd" '
        if approver.public_key:
            lines.append(entry + approver.public_key)
        else:
            lines.append("# " + entry + "ssh-ed25519 AAAA...paste the public key here")
    return "\n".join(lines) + "\n"


def _gitignore_lines(existing: str) -> list[str]:
    present = {line.strip() for line in existing.splitlines()}
    return [entry for entry in GITIGNORE_ENTRIES if entry not in present]


def _ci_template(relative: str) -> str:
    """A file of mlaudit's ci/ folder: beside the package in a checkout, inside it in a wheel."""
    package = Path(__file__).resolve().parent
    for base in (package / "ci", package.parent / "ci"):
        if (base / relative).is_file():
            return (base / relative).read_text(encoding="utf-8")
    raise UsageError(
        f"this mlaudit installation has no ci/{relative}; copy it from the mlaudit "
        "repository, or run init with --ci none"
    )


def _github_caller(workdir: str, edd: str) -> str:
    return f"""# Written by `mlaudit init`: runs the mlaudit audit on every pull request.
# Pin the reusable workflow to a full commit SHA of mlaudit (replace <full-sha>), and
# make the `gate` job a required status check. See docs/ci.md in mlaudit.
name: audit
on:
  pull_request:
permissions: {{}}
concurrency:
  group: audit-${{{{ github.event.pull_request.number || github.ref }}}}
  cancel-in-progress: true
jobs:
  audit:
    uses: mlaudit/mlaudit/.github/workflows/mlaudit.yml@<full-sha>
    permissions:
      contents: read
    with:
      working-directory: {workdir}
      edd: {edd}
      shards: 4
      mlaudit-image: ghcr.io/<owner>/mlaudit@sha256:<digest>
      setup-command: dvc pull
    secrets:
      tracking-uri: ${{{{ secrets.MLAUDIT_TRACKING_URI }}}}
"""


def _gitlab_ci(workdir: str, edd: str) -> str:
    return f"""# Written by `mlaudit init`: the mlaudit audit on every merge request.
# Pin `ref` to a full commit SHA of mlaudit; set MLAUDIT_GITLAB_TOKEN (masked, protected)
# and "Pipelines must succeed". See docs/ci.md in mlaudit.
include:
  - project: mlaudit/mlaudit
    ref: <full-sha>
    file: ci/gitlab/mlaudit.gitlab-ci.yml
variables:
  MLAUDIT_DIR: {workdir}
  MLAUDIT_EDD: {edd}
  MLAUDIT_TOOL_IMAGE: registry.example.com/mlaudit@sha256:<digest>
  MLAUDIT_SETUP_COMMAND: dvc pull
"""


def _requirements_in() -> str:
    return (
        "# What the trial script imports, installed into the training image.\n"
        "# Lock it with hashes next to this file (requirements.lock), e.g.\n"
        "#   pip-compile --generate-hashes -o requirements.lock requirements.in\n"
        "pyyaml\n"
    )


def _ci_files(answers: Answers, project: Path, top: Path) -> list[PlannedFile]:
    """CI files live at the repository's top level (GitHub reads workflows only there)."""
    if answers.ci == "none":
        return []
    workdir = project.relative_to(top).as_posix() or "."
    up = Path(os.path.relpath(top, project))
    image = [
        # Built from the top level: the Dockerfile COPYs ci/docker/requirements.lock.
        PlannedFile(up / "ci/docker/Dockerfile", _ci_template("docker/Dockerfile")),
        PlannedFile(up / "ci/docker/requirements.in", _requirements_in()),
    ]
    if answers.ci == "github":
        publisher = _ci_template("github/mlaudit-publish.yml")
        return [
            PlannedFile(
                up / ".github/workflows/audit.yml", _github_caller(workdir, answers.edd_name)
            ),
            PlannedFile(up / ".github/workflows/mlaudit-publish.yml", publisher),
            *image,
        ]
    return [PlannedFile(up / ".gitlab-ci.yml", _gitlab_ci(workdir, answers.edd_name)), *image]


def planned_files(answers: Answers, project: Path, top: Path) -> list[PlannedFile]:
    document = edd_document(answers)
    check_document(document, answers.edd_name)
    return [
        PlannedFile(Path(answers.edd_name), edd_text(document)),
        PlannedFile(Path(".mlaudit/policy.yaml"), policy_text(answers)),
        PlannedFile(Path(".mlaudit/allowed_signers"), allowed_signers_text(answers)),
        PlannedFile(Path(".gitignore"), "\n".join(GITIGNORE_ENTRIES) + "\n", append=True),
        *_ci_files(answers, project, top),
    ]


# -- writing ------------------------------------------------------------------------------


def scaffold(project: Path, answers: Answers, *, force: bool = False) -> InitResult:
    """Write the audit files into `project` (a folder in a git repository)."""
    if answers.ci not in CI_CHOICES:
        raise UsageError(f"--ci is one of {', '.join(CI_CHOICES)}, not {answers.ci!r}")
    project = project.resolve()
    top = repo_root(project)
    result = InitResult()
    for planned in planned_files(answers, project, top):
        _write(project, planned, force, result)
    result.checklist = checklist(answers, project, top)
    return result


def _write(project: Path, planned: PlannedFile, force: bool, result: InitResult) -> None:
    target = project / planned.path
    if planned.append:
        existing = target.read_text(encoding="utf-8") if target.is_file() else ""
        missing = _gitignore_lines(existing)
        if missing:
            joiner = "" if not existing or existing.endswith("\n") else "\n"
            header = "# mlaudit: run outputs and caches (never committed)\n"
            target.write_text(existing + joiner + header + "\n".join(missing) + "\n", "utf-8")
            result.appended.append(planned.path)
        return
    if target.exists() and not force:
        result.skipped.append(planned.path)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(planned.content, encoding="utf-8")
    result.written.append(planned.path)


def checklist(answers: Answers, project: Path, top: Path) -> list[str]:
    """What `init` cannot do for you, in the order you will need it."""
    items = []
    if not all(a.public_key for a in answers.approvers) or not answers.approvers:
        items.append(
            "keys: each approver runs `ssh-keygen -t ed25519 -C PRINCIPAL -f KEYFILE` and "
            "puts KEYFILE.pub into .mlaudit/allowed_signers (one line per approver)"
        )
    untracked = [p for p in answers.data if not _dvc_tracked(project, p)]
    if untracked:
        items.append(
            f"data: make {', '.join(untracked)} DVC output(s): `dvc init`, then `dvc add PATH` "
            "for a bundled file or a `dvc.yaml` stage that downloads it, `dvc repro`, and "
            "commit dvc.lock / PATH.dvc (docs/adopt.md#data)"
        )
    items.append(
        f"trust: commit .mlaudit/ to the protected base branch ({answers.trust_ref}); "
        "mlaudit reads it from there, never from a pull request"
    )
    items.append(
        f"sign: `mlaudit edd sign {answers.edd_name} --key KEYFILE --principal PRINCIPAL` "
        f"per approver, then `mlaudit edd verify {answers.edd_name} --trust-ref "
        f"{answers.trust_ref}`"
    )
    items.append(
        f"run: `mlaudit ablate run {answers.edd_name} --trust-ref {answers.trust_ref} "
        "--out out/run1`; its defaults must equal protocol.baseline"
    )
    if answers.ci != "none":
        items.append(
            "ci: replace <full-sha> and the image digests in the CI file; list the trial's "
            "imports in ci/docker/requirements.in and lock them (requirements.lock)"
        )
    return items


def _dvc_tracked(project: Path, path: str) -> bool:
    if (project / f"{path}.dvc").is_file():
        return True
    lock = project / "dvc.lock"
    return lock.is_file() and path in lock.read_text(encoding="utf-8", errors="replace")
