"""`mlaudit report publish`: sticky PR/MR comment, commit status, check run, step summary.

The only place that reads os.environ for publishing: it builds PublishSettings
and hands plain values to audit.publish. The status and the check show the
gate's result as data (--gate, or the gate the fork-safe publisher recomputes);
never anything read back out of Markdown.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from audit.cli._common import echo, emit_json, json_option, reproducible_now
from audit.errors import UsageError

if TYPE_CHECKING:
    from audit.publish import PublishRequest
    from audit.publish.settings import PublishSettings

_FILE = click.Path(path_type=Path, dir_okay=False)
_DIR = click.Path(path_type=Path, file_okay=False)


@click.command("publish")
@click.argument("report", required=False, type=_FILE)
@click.option(
    "--gate",
    "gate_file",
    type=_FILE,
    help="The gate result (gate.json): the commit status and check show it. "
    "Without it they say NOT GATED, never success.",
)
@click.option("--dry-run", is_flag=True, help="Send nothing; write the exact requests instead.")
@click.option(
    "--requests",
    "requests_file",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="With --dry-run: where the requests (method, path, JSON) are written ('-': stdout).",
)
@click.option("--key", help="Sticky-comment key (default: the key in the report's marker).")
@click.option(
    "--platform",
    type=click.Choice(["github", "gitlab"]),
    help="Override detection from GITHUB_ACTIONS / GITLAB_CI.",
)
@click.option(
    "--to-artifact",
    type=_DIR,
    help="Unprivileged job: stage the study's documents, PR number and head SHA here; post "
    "nothing. Needs --edd, --results, --analysis (and --checkpoint if there is one).",
)
@click.option("--edd", "edd_file", type=_FILE, help="With --to-artifact: the signed EDD.")
@click.option("--results", "results_file", type=_FILE, help="With --to-artifact: results.json.")
@click.option("--analysis", "analysis_file", type=_FILE, help="With --to-artifact: analysis.json.")
@click.option("--checkpoint", "checkpoint_file", type=_FILE, help="With --to-artifact: checkpoint.")
@click.option(
    "--from-artifact",
    type=_DIR,
    help="Privileged workflow_run job: recompute the gate from this (untrusted) artifact with "
    "the trust files of --trust-ref, render the report here and post that.",
)
@click.option(
    "--trust-ref",
    metavar="REF",
    help="With --from-artifact: the default branch's ref holding .mlaudit/ (e.g. HEAD of its "
    "checkout); never the artifact's.",
)
@click.option(
    "--repo",
    type=_DIR,
    help="With --from-artifact: the project folder in the default branch's checkout, where the "
    "lookup of .mlaudit/ starts (default: the current directory).",
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
    gate_file: Path | None,
    dry_run: bool,
    requests_file: Path,
    key: str | None,
    platform: str | None,
    to_artifact: Path | None,
    edd_file: Path | None,
    results_file: Path | None,
    analysis_file: Path | None,
    checkpoint_file: Path | None,
    from_artifact: Path | None,
    trust_ref: str | None,
    repo: Path | None,
    max_wait: float,
    as_json: bool,
) -> int:
    """Post REPORT (Markdown from `report render --gate`) to the pull/merge request.

    Detects GitHub Actions (also Enterprise Server via GITHUB_API_URL) or GitLab
    CI (also self-managed via CI_API_V4_URL). Tokens: GITHUB_TOKEN or
    MLAUDIT_GITHUB_TOKEN; MLAUDIT_GITLAB_TOKEN (CI_JOB_TOKEN cannot post notes).
    """
    from audit.publish import RateLimitPolicy
    from audit.publish.settings import settings_from_environment

    _check_modes(report, gate_file, key, to_artifact, from_artifact, trust_ref, platform)
    documents = (edd_file, results_file, analysis_file, checkpoint_file)
    if any(documents) and not to_artifact:
        raise UsageError("--edd, --results, --analysis and --checkpoint go with --to-artifact")
    if (trust_ref or repo) and not from_artifact:
        raise UsageError("--trust-ref and --repo go with --from-artifact")
    if str(requests_file) != "-" and not dry_run:
        raise UsageError("--requests goes with --dry-run")
    env = dict(os.environ)
    stamp = reproducible_now(env).strftime("%Y-%m-%dT%H:%M:%SZ")
    chosen = platform or ("github" if (to_artifact or from_artifact) else None)
    settings = settings_from_environment(
        env,
        RateLimitPolicy(max_total=max_wait),
        platform=chosen,  # type: ignore[arg-type]
    )
    if to_artifact:
        return _stage(settings, to_artifact, edd_file, results_file, analysis_file,
                      checkpoint_file, as_json)  # fmt: skip
    if from_artifact:
        assert trust_ref is not None
        with tempfile.TemporaryDirectory(prefix="mlaudit-artifact-") as private:
            from audit.publish.prepare import artifact_request

            request = artifact_request(
                from_artifact,
                Path(private) / "study",
                trust_ref=trust_ref,
                repo=repo or Path.cwd(),
                at=dt.datetime.now(dt.timezone.utc),
                timestamp=stamp,
                dry_run=dry_run,
            )
    else:
        from audit.publish.prepare import direct_request

        assert report is not None
        request = direct_request(report, gate_file, key, stamp, dry_run=dry_run)
    return _send(settings, request, env, requests_file, as_json)


def _check_modes(
    report: Path | None,
    gate_file: Path | None,
    key: str | None,
    to_artifact: Path | None,
    from_artifact: Path | None,
    trust_ref: str | None,
    platform: str | None,
) -> None:
    if to_artifact and from_artifact:
        raise UsageError("give --to-artifact or --from-artifact, not both")
    if (to_artifact or from_artifact) and (report or gate_file or key):
        raise UsageError(
            "the artifact modes take no REPORT, --gate or --key: the privileged publisher "
            "judges and renders the study itself"
        )
    if (to_artifact or from_artifact) and platform == "gitlab":
        raise UsageError("the two-stage artifact mode is for GitHub fork pull requests only")
    if from_artifact and not trust_ref:
        raise UsageError("--from-artifact needs --trust-ref: the default branch's trust files")
    if not (to_artifact or from_artifact) and report is None:
        raise UsageError("give REPORT (or --to-artifact / --from-artifact DIR)")


def _stage(
    settings: PublishSettings,
    directory: Path,
    edd: Path | None,
    results: Path | None,
    analysis: Path | None,
    checkpoint: Path | None,
    as_json: bool,
) -> int:
    from audit.publish.artifact import StudyDocuments
    from audit.publish.prepare import stage_artifact

    if edd is None or results is None or analysis is None:
        raise UsageError("--to-artifact needs --edd, --results and --analysis")
    if settings.pr_number is None or settings.sha is None:
        raise UsageError("--to-artifact needs a pull_request event (PR number and head SHA)")
    study = StudyDocuments(edd, results, analysis, checkpoint)
    written = stage_artifact(directory, study, settings.pr_number, settings.sha)
    if as_json:
        emit_json({"artifact": [str(p) for p in written], "pr_number": settings.pr_number})
    else:
        echo(f"staged {len(written)} files in {directory} for PR #{settings.pr_number}")
    return 0


def _send(
    settings: PublishSettings,
    request: PublishRequest,
    env: dict[str, str],
    requests_file: Path,
    as_json: bool,
) -> int:
    from audit.publish import publish as run_publish
    from audit.publish.settings import require_token
    from audit.report.escape import clean_text

    if not request.dry_run:
        require_token(settings, env)
    outcome = run_publish(settings, request)
    to_stdout = str(requests_file) == "-"
    if request.dry_run:
        document = {
            "platform": outcome.platform,
            "notes": outcome.notes,
            "requests": [r.to_json() for r in outcome.requests],
        }
        if to_stdout and not as_json:
            emit_json(document)
            return 0
        if not to_stdout:
            _write(
                requests_file, json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
            )
    if as_json:
        emit_json(outcome.to_json())
        return 0
    where = f" PR/MR {outcome.pr_number}" if outcome.pr_number else ""
    echo(f"{outcome.platform}{where} @ {(outcome.sha or '?')[:12]}: {request.status_text()}")
    # Details can echo API responses (URLs): printed as one clean line each.
    for action in outcome.actions:
        detail = f" ({clean_text(action.detail, 300)})" if action.detail else ""
        echo(f"  {action.target}: {action.action}{detail}")
    for note in outcome.notes:
        echo(f"  note: {clean_text(note, 300)}")
    sys.stdout.flush()
    return 0


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot write: {error.strerror}") from None
