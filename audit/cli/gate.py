"""`mlaudit gate`: judge every rule on its evidence and exit 0 only when all pass."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option, one_trust_source, trust_options
from audit.errors import ExitCode, UsageError

_FILE = click.Path(dir_okay=False, path_type=Path, exists=True)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option("--analysis", "analysis_file", type=_FILE, required=True, help="analysis.json")
@click.option("--results", "results_file", type=_FILE, required=True, help="results.json")
@click.option("--edd", "edd_file", type=_FILE, required=True, help="The signed EDD.")
@trust_options
@click.option(
    "--at", "at_text", metavar="TIME", help="Judge approvals at TIME (default: run time)."
)
@click.option("--tracking-uri", metavar="URI", help="Also check every trial is sealed and verify.")
@click.option("--experiment", metavar="NAME|ID", help="MLflow experiment (default: from results).")
@click.option("--checkpoint", "checkpoint_file", type=_FILE, help="Earlier checkpoint to extend.")
@click.option(
    "--sealed-out",
    "sealed_out",
    type=_OUT,
    help="With --tracking-uri: write the sealed runs judged, with proofs (for bundle create).",
)
@click.option("--junit", "junit_file", type=_OUT, help="Also write JUnit XML, a testcase per rule.")
@click.option("-o", "--output", type=_OUT, help="Write the gate result (gate.json) here.")
@click.option(
    "--expect-digest",
    metavar="SHA256",
    help="Refuse to judge unless the EDD's digest is this one (a pinned, orchestrated study).",
)
@json_option
def gate(
    analysis_file: Path,
    results_file: Path,
    edd_file: Path,
    trust_ref: str | None,
    repo: Path | None,
    trust_dir: Path | None,
    at_text: str | None,
    tracking_uri: str | None,
    experiment: str | None,
    checkpoint_file: Path | None,
    sealed_out: Path | None,
    junit_file: Path | None,
    output: Path | None,
    expect_digest: str | None,
    as_json: bool,
) -> int:
    """Decide whether the change may merge: every rule passes, or exit 1 with the reasons.

    \b
    Rules: the EDD verifies against the trust ref and the results come from
    this exact EDD; the executed protocol equals the signed one; budget; no
    attrition beyond the policy; no confound and one provenance; determinism
    re-run within tolerance; every claim met; with --tracking-uri, every trial
    sealed and the ledger verifying against --checkpoint.
    """
    from audit.cli._findings import echo_findings
    from audit.cli.edd import parse_time
    from audit.documents import write_document
    from audit.edd.pin import check_pinned_digest, parse_expected_digest
    from audit.evidence import StudyFiles, TrustSource, attach_ledger, gate_inputs, gather
    from audit.gate import decide
    from audit.report.junit import render_junit

    one_trust_source(trust_ref, trust_dir)
    if sealed_out is not None and not tracking_uri:
        raise UsageError("--sealed-out needs --tracking-uri (the sealed runs to write)")
    if expect_digest is not None:
        parse_expected_digest(expect_digest)
    evidence = gather(
        StudyFiles(edd_file, results_file, analysis_file),
        TrustSource(trust_ref, repo, trust_dir),
        at=parse_time(at_text),
    )
    # The judged EDD is the one loaded above: a pinned study refuses any other.
    check_pinned_digest(evidence.edd, expect_digest)
    if tracking_uri:
        attach_ledger(
            evidence, tracking_uri, experiment=experiment, checkpoint_file=checkpoint_file
        )
    result = decide(gate_inputs(evidence))
    document = result.to_dict()
    if output is not None:
        write_document(output, document, schema="gate")
    if sealed_out is not None:
        from audit.bundle.collect import sealed_evidence_document

        write_document(sealed_out, sealed_evidence_document(evidence), schema="sealed")
    if junit_file is not None:
        junit_file.write_text(
            render_junit(result.findings(), f"mlaudit gate {evidence.edd.id}"), encoding="utf-8"
        )
    if as_json:
        emit_json(document)
    else:
        echo_findings(result.findings())
        echo("gate: PASSED" if result.passed else "gate: FAILED")
    return int(ExitCode.OK if result.passed else ExitCode.CHECK_FAILED)
