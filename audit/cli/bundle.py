"""`mlaudit bundle create` and `mlaudit bundle verify`: the auditor's one file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from audit.cli._common import (
    echo,
    emit_json,
    json_option,
    one_trust_source,
    printable,
    reproducible_now,
    trust_options,
)
from audit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from audit.bundle.verify import BundleReport

_IN = click.Path(dir_okay=False, path_type=Path, exists=True)
_OUT = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)

# Standard names inside an output folder given with --dir.
DIR_DEFAULTS = {
    "results_file": "results.json",
    "analysis_file": "analysis.json",
    "gate_file": "gate.json",
    "report_md": "report.md",
    "report_html": "report.html",
    "checkpoint_file": "checkpoint.json",
    "sealed_file": "sealed.json",
}


@click.group()
def bundle() -> None:
    """Create and verify the offline audit bundle."""


@bundle.command()
@click.option("-o", "--output", type=_OUT, required=True, help="Bundle file to write (.tar.gz).")
@click.option("--edd", "edd_file", type=_IN, required=True, help="The signed EDD.")
@click.option("--dir", "study_dir", type=_DIR, help="Folder with results.json, analysis.json, ...")
@click.option(
    "--results", "results_file", type=_IN, help="results.json (default: DIR/results.json)"
)
@click.option("--analysis", "analysis_file", type=_IN, help="analysis.json")
@click.option("--gate", "gate_file", type=_IN, help="gate.json from `mlaudit gate -o`.")
@click.option("--report-md", type=_IN, help="report.md")
@click.option("--report-html", type=_IN, help="report.html")
@trust_options
@click.option("--tracking-uri", metavar="URI", help="Include sealed records and inclusion proofs.")
@click.option("--experiment", metavar="NAME|ID", help="MLflow experiment (default: from results).")
@click.option("--checkpoint", "checkpoint_file", type=_IN, help="Published checkpoint to prove to.")
@click.option(
    "--sealed",
    "sealed_file",
    type=_IN,
    help="sealed.json from `gate --sealed-out`: the sealed runs the gate judged (no server).",
)
@click.option("--dvc-lock", type=_IN, help="dvc.lock (default: next to the EDD, if present).")
@click.option("--lock-file", type=_IN, help="Environment lock file (default: from provenance).")
@click.option("--sign-key", type=_IN, help="SSH private key to sign the attestation with.")
@json_option
def create(output: Path, edd_file: Path, study_dir: Path | None, **options: object) -> int:
    """Write a deterministic tar.gz with every piece of evidence an auditor needs.

    The same inputs always give a byte-identical bundle. Without --sign-key the
    in-toto attestation is marked unsigned.
    """
    from audit.bundle.collect import BundleRequest, collect_inputs
    from audit.bundle.create import write_bundle

    paths = _fill_from_dir(study_dir, options)
    one_trust_source(paths.get("trust_ref"), paths.get("trust_dir"))
    for required in ("results_file", "analysis_file", "gate_file"):
        if paths.get(required) is None:
            flag = "--" + required.removesuffix("_file")
            raise UsageError(f"missing {flag} (or --dir holding {DIR_DEFAULTS[required]})")
    request = BundleRequest(edd=edd_file, **paths)  # type: ignore[arg-type]
    inputs = collect_inputs(request)
    sign_key = paths.get("sign_key")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as handle:
        write_bundle(inputs, handle, sign_key if isinstance(sign_key, Path) else None)
    partial.replace(output)
    why_not = _why_no_standard_signature(sign_key)
    summary = {
        "bundle": str(output),
        "signed": sign_key is not None,
        "standard_signature": sign_key is not None and not why_not,
        "records": len(inputs.records),
    }
    if options.get("as_json"):
        emit_json(summary)
    else:
        echo(
            f"wrote {output} ({len(inputs.records)} sealed record(s), "
            f"{'signed' if sign_key else 'UNSIGNED'} attestations)"
        )
        if why_not:
            echo(f"note: SSH signatures only, no standard DSSE signature: {why_not}")
    return int(ExitCode.OK)


def _why_no_standard_signature(sign_key: object) -> str:
    if not isinstance(sign_key, Path):
        return ""
    from audit.bundle.signing import BundleSigner

    return BundleSigner.load(sign_key).why_no_standard


def _fill_from_dir(study_dir: Path | None, options: dict[str, object]) -> dict[str, object]:
    paths = {k: v for k, v in options.items() if k != "as_json"}
    if study_dir is not None:
        for key, name in DIR_DEFAULTS.items():
            if paths.get(key) is None and (study_dir / name).is_file():
                paths[key] = study_dir / name
    return paths


@bundle.command()
@click.argument("file", type=_IN)
@click.option(
    "--at", "at_text", metavar="TIME", help="Judge approvals at TIME (default: run time)."
)
@click.option(
    "--tsa-cert",
    type=_IN,
    help="PEM certificate of the timestamp authority (or its CA): the checkpoint's "
    "RFC 3161 timestamp must verify against it (with openssl ts -verify).",
)
@click.option(
    "--vsa",
    "vsa_file",
    type=_OUT,
    help="Write a SLSA verification summary (DSSE envelope) of this verification here.",
)
@click.option("--sign-key", type=_IN, help="SSH private key to sign the --vsa with.")
@click.option(
    "--resource-uri",
    metavar="URI",
    help="The VSA's resourceUri (default: mlaudit:edd:<id>:v<version>).",
)
@json_option
def verify(
    file: Path,
    at_text: str | None,
    tsa_cert: Path | None,
    vsa_file: Path | None,
    sign_key: Path | None,
    resource_uri: str | None,
    as_json: bool,
) -> int:
    """Check a bundle offline: digests, approvals, seals and proofs, analysis and gate."""
    from audit.bundle.verify import verify_bundle
    from audit.cli._findings import echo_findings
    from audit.cli.edd import parse_time

    if sign_key is not None and vsa_file is None:
        raise UsageError("--sign-key signs the verification summary: give --vsa PATH too")
    report = verify_bundle(file, at=parse_time(at_text), tsa_cert=tsa_cert)
    if vsa_file is not None:
        _write_vsa(report, file, vsa_file, sign_key, resource_uri)
    if as_json:
        emit_json(report.to_dict())
    else:
        echo_findings(report.check_findings())
        echo_findings(report.findings, err=True)
        for note in report.notes:
            echo(f"note: {printable(note)}")
        if vsa_file is not None:
            echo(f"verification summary written to {vsa_file}")
        echo(("bundle: VERIFIED" if report.passed else "bundle: FAILED") + _study_decision(report))
    return int(ExitCode.OK if report.passed else ExitCode.CHECK_FAILED)


def _write_vsa(
    report: BundleReport,
    bundle_file: Path,
    target: Path,
    sign_key: Path | None,
    resource_uri: str | None,
) -> None:
    import os

    from audit.bundle.signing import BundleSigner
    from audit.bundle.vsa import summary_envelope
    from audit.documents import write_document

    signer = BundleSigner.load(sign_key) if sign_key is not None else None
    document = summary_envelope(
        report,
        bundle_file,
        time_verified=reproducible_now(os.environ),
        resource_uri=resource_uri,
        signer=signer,
    )
    write_document(target, document)


def _study_decision(report: BundleReport) -> str:
    """The study's gate decision as the bundle records it (whether or not it verified)."""
    if "passed" not in report.decision:
        return ""
    gate = "PASSED" if report.decision["passed"] else "FAILED"
    edd = report.edd
    study = f"{printable(str(edd.get('id')))} v{edd.get('version')}" if edd else "the study"
    return f"; gate for {study}: {gate}"
