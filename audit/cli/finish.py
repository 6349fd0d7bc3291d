"""`mlaudit finish`: every step after the trials in one process (audit.finish)."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option, one_trust_source, trust_options
from audit.errors import ExitCode, UsageError

_FILE = click.Path(dir_okay=False, path_type=Path, exists=True)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("out_dir", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--edd", "edd_file", type=_FILE, required=True, help="The signed EDD.")
@trust_options
@click.option(
    "--at", "at_text", metavar="TIME", help="Judge approvals at TIME (default: run time)."
)
@click.option("--tracking-uri", metavar="URI", help="The sealed runs: checkpoint, gate, bundle.")
@click.option("--experiment", metavar="NAME|ID", help="MLflow experiment (default: from results).")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=_FILE,
    help="A published checkpoint to prove against (default: take one into OUT/checkpoint.json).",
)
@click.option("--with-records", is_flag=True, help="Embed every sealed record in the checkpoint.")
@click.option(
    "--resampling-seed",
    "seed",
    type=click.IntRange(min=0, max=2**63 - 1),
    help="As `ablate analyze --resampling-seed` [default: 20211].",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=99, max=1_000_000),
    help="As `ablate analyze --resamples` [default: 9999].",
)
@click.option(
    "--budget",
    type=click.Choice(("github-comment", "github-check", "step-summary", "gitlab-note")),
    help="Fit report.md into this size limit (as `report render --budget`).",
)
@click.option(
    "--bundle", "bundle_file", type=_OUT, help="Bundle path [default: OUT/audit.bundle.tar.gz]."
)
@click.option("--sign-key", type=_FILE, help="SSH private key to sign the bundle's attestation.")
@click.option(
    "--verify/--no-verify",
    "verify",
    default=True,
    show_default=True,
    help="Check the bundle written, as `bundle verify BUNDLE` does, in this process.",
)
@json_option
def finish(
    out_dir: Path,
    edd_file: Path,
    trust_ref: str | None,
    repo: Path | None,
    trust_dir: Path | None,
    at_text: str | None,
    tracking_uri: str | None,
    experiment: str | None,
    checkpoint_file: Path | None,
    with_records: bool,
    seed: int | None,
    resamples: int | None,
    budget: str | None,
    bundle_file: Path | None,
    sign_key: Path | None,
    verify: bool,
    as_json: bool,
) -> int:
    """Analyze, checkpoint, gate, report and bundle OUT/results.json in one process.

    \b
    Writes into OUT what the separate commands write, byte for byte:
      analysis.json     (ablate analyze)
      checkpoint.json   (track checkpoint; with --tracking-uri and no --checkpoint)
      gate.json, gate.junit.xml   (gate)
      report.md, report.html      (report render, headed by the gate's result)
      audit.bundle.tar.gz         (bundle create)
    Then checks the bundle as `bundle verify` does (--no-verify skips it).
    Exits 0 when the gate passed and the bundle verified, 1 when either failed (the
    report and the bundle are written either way). Each step stays available on its own.
    """
    from audit.cli._findings import echo_findings
    from audit.cli.edd import parse_time
    from audit.finish import FinishRequest
    from audit.finish import finish as run_finish

    one_trust_source(trust_ref, trust_dir)
    if not (out_dir / "results.json").is_file():
        raise UsageError(f"{out_dir / 'results.json'}: no such file (run `mlaudit ablate run`)")
    request = FinishRequest(
        out_dir=out_dir,
        edd=edd_file,
        trust_ref=trust_ref,
        repo=repo,
        trust_dir=trust_dir,
        at=parse_time(at_text),
        tracking_uri=tracking_uri,
        experiment=experiment,
        checkpoint=checkpoint_file,
        with_records=with_records,
        seed=seed,
        resamples=resamples,
        budget=budget,
        bundle=bundle_file,
        sign_key=sign_key,
        verify=verify,
    )
    outcome = run_finish(request, on_step=None if as_json else _step)
    passed = outcome.gate.passed
    verification = outcome.verification
    verified = verification is None or verification.passed
    if as_json:
        emit_json(
            {
                "passed": passed,
                "analysis": str(request.path("analysis")),
                "checkpoint": str(outcome.checkpoint) if outcome.checkpoint else None,
                "gate": str(request.path("gate")),
                "reports": [str(request.path("report_md")), str(request.path("report_html"))],
                "bundle": str(outcome.bundle),
                "records": outcome.records,
                "bundle_verification": verification.to_dict() if verification else None,
            }
        )
    else:
        echo_findings(outcome.gate.findings())
        echo(f"wrote {out_dir}: analysis, gate, reports, bundle {outcome.bundle.name} "
             f"({outcome.records} sealed record(s))")  # fmt: skip
        echo("gate: PASSED" if passed else "gate: FAILED")
        if verification is not None:
            echo_findings(verification.findings, err=True)
            echo(f"bundle: {'VERIFIED' if verification.passed else 'FAILED'} "
                 f"({len(verification.checks)} checks, as `bundle verify`)")  # fmt: skip
    return int(ExitCode.OK if passed and verified else ExitCode.CHECK_FAILED)


def _step(name: str) -> None:
    echo(f"mlaudit finish: {name}", err=True)
