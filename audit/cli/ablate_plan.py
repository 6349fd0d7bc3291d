"""`mlaudit ablate plan`: expand the EDD into arms x seeds, check confounds, print CI shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit.cli._common import echo, emit_json, json_option, printable, project_option
from audit.errors import BudgetError, InternalError, ValidationFailed


@click.command()
@click.argument("edd_path", metavar="EDD", type=click.Path(path_type=Path))
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    metavar="N",
    help="Print N balanced shards as JSON: a GitHub matrix include list / GitLab parallel:matrix.",
)
@click.option(
    "--trust-ref",
    metavar="REF",
    help="Also check the EDD against the policy REF holds (min_seeds, quorum, required roles).",
)
@project_option
@json_option
def plan(
    edd_path: Path, shards: int | None, trust_ref: str | None, repo: Path | None, as_json: bool
) -> int:
    """Expand EDD into its trials (arms x paired seeds) and check every arm for confounds."""
    from audit.edd import load_edd, planned_trial_count
    from audit.protocol.plan import build_plan
    from audit.protocol.shards import shard_matrix

    edd = load_edd(edd_path)
    _check_policy(edd.document, edd_path, trust_ref, repo)
    built = build_plan(edd.document, source=str(edd_path))
    planned = planned_trial_count(edd.document)
    rerun = 1 if "reproducibility" in edd.document else 0
    if planned != built.trial_count + rerun:
        raise InternalError(
            f"plan has {built.trial_count} trials (+{rerun} re-run) but the EDD plans {planned}"
        )
    from audit.edd.semantics import planning_warnings

    warnings = planning_warnings(edd.document)
    budget = dict(edd.document["budget"])
    if shards is not None:
        # One line, so CI can put it straight into $GITHUB_OUTPUT.
        click.echo(json.dumps(shard_matrix(built, shards), separators=(",", ":")))
        return 0
    summary: dict[str, Any] = {
        "edd": {"id": edd.id, "version": edd.version, "digest": edd.digest},
        **built.to_dict(),
        "planned_trial_count": planned,
        "reproducibility": {"arm": built.reproducibility[0], "seed": built.reproducibility[1]}
        if rerun
        else None,
        "budget": budget,
        "fits_budget": planned <= int(budget["max_trials"]),
        "trials": [t.trial_id for t in built.trials],
        "warnings": [{"pointer": p, "message": m} for p, m in warnings],
    }
    if as_json:
        emit_json(summary)
    else:
        _render(summary)
    if not summary["fits_budget"]:
        raise BudgetError(
            f"the plan needs {planned} trials but the budget allows {budget['max_trials']}"
        )
    return 0


def _check_policy(
    document: dict[str, Any], edd_path: Path, trust_ref: str | None, repo: Path | None
) -> None:
    """Refuse a plan the trust policy can never approve (too few seeds, approvers, roles)."""
    if trust_ref is None:
        return
    from audit.edd.policy import policy_problems_at

    problems = policy_problems_at(document, edd_path, trust_ref, repo)
    if problems:
        raise ValidationFailed(str(edd_path), problems)


def _render(summary: dict[str, Any]) -> None:
    edd = summary["edd"]
    echo(f"EDD {edd['id']} v{edd['version']}  sha256:{edd['digest']}")
    echo(f"design: {summary['design']}   command: {' '.join(summary['command'])}")
    width = max(len(arm["name"]) for arm in summary["arms"])
    echo("arms:")
    for arm in summary["arms"]:
        overrides = " ".join(arm["overrides"]) or "(signed baseline)"
        echo(f"  {arm['name']:<{width}}  {arm['kind']:<9}  {overrides}")
    seeds = summary["seeds"]
    echo(f"seeds ({len(seeds)}, paired across arms): {', '.join(str(s) for s in seeds)}")
    check = summary["reproducibility"]
    rerun = f" + 1 determinism re-run ({check['arm']}/{check['seed']})" if check else ""
    arms = len(summary["arms"])
    echo(f"trials: {arms} arms x {len(seeds)} seeds = {summary['trial_count']}{rerun}")
    budget = summary["budget"]
    verdict = "fits" if summary["fits_budget"] else "EXCEEDS"
    echo(
        f"budget: {summary['planned_trial_count']} of max {budget['max_trials']} trials "
        f"({verdict}), "
        f"max {budget['max_wall_minutes']:g} min wall, "
        f"{budget['trial_timeout_seconds']:g} s per trial"
    )
    echo("confound check: every arm differs from the baseline only in its declared keys")
    for warning in summary["warnings"]:
        # Stderr, so the plan on stdout stays the same with or without warnings.
        echo(printable(f"warning: {warning['pointer']}: {warning['message']}"), err=True)
