"""`mlaudit init`: ask about the training script (or take flags) and write the audit files.

Parses flags, asks for what is missing when a person is at the terminal, calls
audit.scaffold and prints what it wrote and what is left to do.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from audit.cli._common import echo, emit_json, json_option
from audit.errors import UsageError


@click.command()
@click.option(
    "--dir",
    "project",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=".",
    show_default=True,
    help="The project folder (inside a git repository).",
)
@click.option(
    "--command", "command", metavar="TEXT", help="Training command, e.g. 'python train.py'."
)
@click.option(
    "--baseline",
    metavar="KEY=VALUE",
    multiple=True,
    help="A default of the training script (dotted keys nest); repeat for each key.",
)
@click.option(
    "--component",
    metavar="NAME:KEY=VALUE...",
    multiple=True,
    help="A component and the overrides that switch it off, e.g. 'pca:features.pca=false'.",
)
@click.option("--metric", metavar="NAME[:GOAL]", help="Primary metric (goal maximize|minimize).")
@click.option("--secondary", metavar="NAME[:GOAL]", multiple=True, help="A secondary metric.")
@click.option(
    "--claim",
    metavar="COMPONENT=SPEC",
    multiple=True,
    help="improves[:MIN_EFFECT] or non-inferior:MARGIN (default: improves).",
)
@click.option("--data", metavar="PATH", multiple=True, help="A DVC-tracked data path.")
@click.option("--owner", metavar="PRINCIPAL", multiple=True, help="An owner of the study.")
@click.option(
    "--approver",
    metavar="PRINCIPAL[=PUBKEY_FILE]",
    multiple=True,
    help="An approver for allowed_signers; with a .pub file its key is filled in.",
)
@click.option("--id", "study_id", metavar="SLUG", help="Study id (default: the folder's name).")
@click.option("--title", help="Study title.")
@click.option("--hypothesis", help="What the study is to show.")
@click.option("--seeds", type=click.IntRange(min=2), default=10, show_default=True)
@click.option(
    "--rerun-exclude",
    metavar="METRIC",
    multiple=True,
    help="A secondary metric the determinism re-run does not compare (e.g. a timing).",
)
@click.option(
    "--ci",
    type=click.Choice(["github", "gitlab", "none"]),
    help="Write CI files for GitHub or GitLab (default: ask; none with --yes).",
)
@click.option("--edd", "edd_name", default="edd.yaml", show_default=True, help="EDD file name.")
@click.option("--trust-ref", default="main", show_default=True, help="The protected base branch.")
@click.option("--yes", "-y", is_flag=True, help="Ask nothing: take flags and defaults.")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@json_option
def init(
    project: Path,
    command: str | None,
    baseline: tuple[str, ...],
    component: tuple[str, ...],
    metric: str | None,
    secondary: tuple[str, ...],
    claim: tuple[str, ...],
    data: tuple[str, ...],
    owner: tuple[str, ...],
    approver: tuple[str, ...],
    study_id: str | None,
    title: str | None,
    hypothesis: str | None,
    seeds: int,
    rerun_exclude: tuple[str, ...],
    ci: str | None,
    edd_name: str,
    trust_ref: str,
    yes: bool,
    force: bool,
    as_json: bool,
) -> int:
    """Set up mlaudit in an existing git repository: EDD, trust files, .gitignore, CI.

    Asks for what the flags leave out (unless --yes or no terminal), never overwrites
    a file without --force, and ends with a checklist of what is left.
    """
    from audit import scaffold

    ask = _Asker(interactive=not yes and not as_json and _at_a_terminal())
    answers = scaffold.Answers(
        command=scaffold.parse_command(ask.text(command, "Training command", "--command")),
        baseline={},
        components=[],
        primary="",
        seeds=seeds,
        edd_name=edd_name,
        trust_ref=trust_ref,
    )
    answers.components = [
        scaffold.parse_component(c)
        for c in ask.many(
            component, "Component (NAME:KEY=VALUE that switches it off)", "--component"
        )
    ]
    answers.baseline = scaffold.parse_baseline(
        ask.many(baseline, "Script default (KEY=VALUE)", "--baseline", _needed_keys(answers))
    )
    answers.primary, answers.goal = scaffold.parse_metric(
        ask.text(metric, "Primary metric (NAME[:maximize|minimize])", "--metric"), "maximize"
    )
    answers.secondary = [scaffold.parse_metric(s, "minimize") for s in secondary]
    answers.claims = dict(_pair(c, "--claim") for c in claim)
    answers.data = list(ask.many(data, "DVC-tracked data path", "--data"))
    answers.owners = list(ask.many(owner, "Owner (e.g. you@example.com)", "--owner"))
    answers.approvers = [
        scaffold.parse_approver(a) for a in ask.many(approver, "Approver PRINCIPAL[=PUBKEY]", "")
    ]
    answers.study_id = study_id or _slug(project.resolve().name)
    answers.title = title or f"Ablation study of {answers.study_id}"
    answers.hypothesis = hypothesis or answers.hypothesis
    answers.exclude_from_rerun = list(rerun_exclude)
    answers.ci = ci or ask.choice("CI platform", ("github", "gitlab", "none"), "none")
    ask.done()
    result = scaffold.scaffold(project, answers, force=force)
    _render(result, as_json)
    return 0


def _at_a_terminal() -> bool:
    return sys.stdin.isatty()


def _needed_keys(answers: Any) -> list[str]:
    """The keys the components override: the baseline must hold each (script defaults)."""
    return [o.split("=", 1)[0] for c in answers.components for o in c.ablate]


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"{flag} {text!r} is not NAME=SPEC")
    return key, value


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return slug[:64] or "my-study"


class _Asker:
    """Prompts for what the flags left out; without a terminal, collects what is missing."""

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive
        self.missing: list[str] = []

    def text(self, value: str | None, prompt: str, flag: str) -> str:
        if value:
            return value
        if self.interactive:
            return str(click.prompt(prompt))
        self.missing.append(flag)
        return "missing"

    def many(
        self, values: Sequence[str], prompt: str, flag: str, hints: Sequence[str] = ()
    ) -> Sequence[str]:
        if values or not (self.interactive or flag):
            return values
        if not self.interactive:
            self.missing.append(flag)
            return ()
        return self._collect(prompt, hints)

    def _collect(self, prompt: str, hints: Sequence[str]) -> list[str]:
        collected: list[str] = []
        for hint in hints:  # one prompt per key a component needs
            collected.append(f"{hint}={click.prompt(f'{prompt}: {hint}=')}")
        while True:
            item = str(click.prompt(f"{prompt} (empty to finish)", default="", show_default=False))
            if not item:
                return collected
            collected.append(item)

    def choice(self, prompt: str, options: Sequence[str], default: str) -> str:
        if not self.interactive:
            return default
        return str(click.prompt(prompt, type=click.Choice(list(options)), default=default))

    def done(self) -> None:
        if self.missing:
            raise UsageError(
                f"init needs {', '.join(dict.fromkeys(self.missing))} (or run it in a terminal "
                "without --yes to be asked)"
            )


def _render(result: Any, as_json: bool) -> None:
    show: Callable[[Path], str] = lambda p: p.as_posix()  # noqa: E731
    if as_json:
        emit_json(
            {
                "written": [show(p) for p in result.written],
                "appended": [show(p) for p in result.appended],
                "skipped": [show(p) for p in result.skipped],
                "checklist": result.checklist,
            }
        )
        return
    for path in result.written:
        echo(f"wrote    {show(path)}")
    for path in result.appended:
        echo(f"appended {show(path)} (mlaudit's output folders)")
    for path in result.skipped:
        echo(f"kept     {show(path)} (exists; --force overwrites it)")
    echo("\nLeft to do:")
    for number, item in enumerate(result.checklist, 1):
        echo(f"  {number}. {item}")
