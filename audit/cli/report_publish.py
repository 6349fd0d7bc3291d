"""`mlaudit report publish`: sticky PR/MR comment, commit status, check run, step summary.

The only place that reads os.environ for publishing: it builds PublishSettings
and hands plain values to audit.publish.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option
from audit.errors import InputError, Location, UsageError


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_report(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", location=Location(str(path))) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read: {error}", location=Location(str(path))) from None


@click.command("publish")
@click.argument("report", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@click.option("--key", help="Sticky-comment key (default: the key in the report's marker).")
@click.option(
    "--platform",
    type=click.Choice(["github", "gitlab"]),
    help="Override detection from GITHUB_ACTIONS / GITLAB_CI.",
)
@click.option(
    "--to-artifact",
    type=click.Path(path_type=Path, file_okay=False),
    help="Unprivileged job: write the report, PR number and head SHA here; post nothing.",
)
@click.option(
    "--from-artifact",
    type=click.Path(path_type=Path, file_okay=False),
    help="Privileged workflow_run job: post the report from this (untrusted) artifact.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(0, 3600),
    default=300,
    show_default=True,
    help="Give up after this many seconds of rate-limit and fault retries.",
)
@json_option
def publish(
    report: Path | None,
    dry_run: bool,
    key: str | None,
    platform: str | None,
    to_artifact: Path | None,
    from_artifact: Path | None,
    max_wait: float,
    as_json: bool,
) -> int:
    """Post REPORT (Markdown from `report render`) to the pull/merge request.

    Detects GitHub Actions (also Enterprise Server via GITHUB_API_URL) or GitLab
    CI (also self-managed via CI_API_V4_URL). Tokens: GITHUB_TOKEN or
    MLAUDIT_GITHUB_TOKEN; MLAUDIT_GITLAB_TOKEN (CI_JOB_TOKEN cannot post notes).
    """
    from audit.publish import PublishRequest, RetryPolicy
    from audit.publish import publish as run_publish
    from audit.publish.artifact import Handover, read_artifact, write_artifact
    from audit.publish.body import read_facts
    from audit.publish.settings import require_token, settings_from_environment
    from audit.report.escape import clean_text, marker_key

    if from_artifact and (report or to_artifact):
        raise UsageError("--from-artifact takes no REPORT and no --to-artifact")
    if not from_artifact and report is None:
        raise UsageError("give REPORT (or --from-artifact DIR)")
    if (to_artifact or from_artifact) and platform == "gitlab":
        raise UsageError("the two-stage artifact mode is for GitHub fork pull requests only")
    env = dict(os.environ)
    chosen = platform or ("github" if (to_artifact or from_artifact) else None)
    settings = settings_from_environment(
        env,
        RetryPolicy(max_total=max_wait),
        platform=chosen,  # type: ignore[arg-type]
    )

    if to_artifact:
        assert report is not None
        text = _read_report(report)
        facts = read_facts(text, str(report))
        if settings.pr_number is None or settings.sha is None:
            raise UsageError("--to-artifact needs a pull_request event (PR number and head SHA)")
        handover = Handover(text, settings.pr_number, settings.sha, marker_key(key or facts.key))
        written = write_artifact(to_artifact, handover)
        if as_json:
            emit_json({"artifact": [str(p) for p in written], "pr_number": settings.pr_number})
        else:
            echo(f"wrote {', '.join(str(p) for p in written)} for PR #{settings.pr_number}")
        return 0

    if from_artifact:
        handover = read_artifact(from_artifact)
        text, sha, number = handover.report, handover.head_sha, handover.pr_number
        source = str(from_artifact / "report.md")
    else:
        assert report is not None
        text, sha, number, source = _read_report(report), None, None, str(report)
    facts = read_facts(text, source)
    chosen_key = marker_key(key or (handover.key if from_artifact else None) or facts.key)
    request = PublishRequest(
        body=text,
        key=chosen_key,
        passed=facts.passed,
        timestamp=_now(),
        sha=sha,
        pr_number=number,
        dry_run=dry_run,
        untrusted=from_artifact is not None,
        title=facts.headline,
    )
    if not dry_run:
        require_token(settings, env)
    outcome = run_publish(settings, request)
    if as_json:
        emit_json(outcome.to_json())
        return 0
    where = f" PR/MR {outcome.pr_number}" if outcome.pr_number else ""
    echo(f"{outcome.platform}{where} @ {(outcome.sha or '?')[:12]}:")
    # Details can echo API responses (URLs): printed as one clean line each.
    for action in outcome.actions:
        detail = f" ({clean_text(action.detail, 300)})" if action.detail else ""
        echo(f"  {action.target}: {action.action}{detail}")
    for note in outcome.notes:
        echo(f"  note: {clean_text(note, 300)}")
    return 0
