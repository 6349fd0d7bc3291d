"""`mlaudit track checkpoint` and `mlaudit track verify`: parse, call audit.tracking, render."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option, printable
from audit.cli.track_log import tracking_uri_option
from audit.errors import ExitCode

_FILE = click.Path(dir_okay=False, path_type=Path)
experiment_option = click.option(
    "--experiment",
    metavar="NAME|ID",
    help="The experiment whose seals form the log (default: the only one with runs).",
)


@click.command()
@tracking_uri_option
@experiment_option
@click.option("--sign-key", type=_FILE, help="SSH private key to sign the checkpoint with.")
@click.option("-o", "--output", type=_FILE, help="Write the checkpoint JSON to this file.")
@click.option(
    "--with-records",
    is_flag=True,
    help="Embed every sealed record, so a later verify can name the exact field that changed.",
)
@click.option(
    "--tsa",
    "tsa_url",
    metavar="URL",
    help="RFC 3161 timestamp authority: get a trusted timestamp over the checkpoint.",
)
@json_option
def checkpoint(
    tracking_uri: str,
    experiment: str | None,
    sign_key: Path | None,
    output: Path | None,
    with_records: bool,
    tsa_url: str | None,
    as_json: bool,
) -> int:
    """Print a checkpoint (origin, size, Merkle root) of the sealed runs, optionally signed."""
    from audit.tracking.checkpoint import sign_checkpoint, timestamp_checkpoint
    from audit.tracking.ledger import fetch_ledger, resolve_experiment
    from audit.tracking.ledger_verify import verify_ledger
    from audit.tracking.rest import connect_reader

    client = connect_reader(tracking_uri)
    ledger = fetch_ledger(client, tracking_uri, resolve_experiment(client, experiment))
    # Never vouch for a log that is already broken: a checkpoint is a promise.
    verification = verify_ledger(ledger)
    if not verification.ok:
        return _render_verification(verification, as_json)
    from audit.tracking.proofs import take_checkpoint

    taken = take_checkpoint(ledger, with_records=with_records)
    if sign_key is not None:
        taken = sign_checkpoint(taken, sign_key)
    if tsa_url is not None:
        taken = timestamp_checkpoint(taken, tsa_url)
    document = taken.to_json()
    if output is not None:
        from audit.documents import write_document

        write_document(output, document, schema="checkpoint")
    if as_json:
        emit_json(document)
    else:
        echo(taken.note().decode().rstrip("\n"))
        echo(f"root (hex): {taken.root}")
        if taken.signer:
            echo(f"signed by {taken.signer} (namespace mlaudit-checkpoint)")
        if taken.timestamp is not None:
            echo(f"timestamped by {printable(tsa_url or '')} at {taken.timestamp['gen_time']}")
        if output is not None:
            echo(f"written to {output}")
    return int(ExitCode.OK)


@click.command()
@tracking_uri_option
@experiment_option
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=_FILE,
    help="An older checkpoint the log must still extend (RFC 9162 consistency).",
)
@click.option(
    "--artifacts",
    "rehash_artifacts",
    is_flag=True,
    help="Also re-hash every sealed run's stored artifact files against its sealed manifest.",
)
@json_option
def verify(
    tracking_uri: str,
    experiment: str | None,
    checkpoint_file: Path | None,
    rehash_artifacts: bool,
    as_json: bool,
) -> int:
    """Refetch every sealed run, recompute records and root, compare with a checkpoint."""
    from audit.tracking.checkpoint import load_checkpoint
    from audit.tracking.client import connect
    from audit.tracking.ledger import fetch_ledger, resolve_experiment
    from audit.tracking.ledger_verify import verify_ledger

    older = load_checkpoint(checkpoint_file) if checkpoint_file else None
    client = connect(tracking_uri)
    if experiment is None and older is not None and older.experiment_id:
        experiment = older.experiment_id
    ledger = fetch_ledger(client, tracking_uri, resolve_experiment(client, experiment))
    verification = verify_ledger(ledger, older)
    if rehash_artifacts:
        from audit.tracking.artifact_check import check_artifacts

        check_artifacts(client, ledger, verification)
    return _render_verification(verification, as_json)


def _render_verification(result: object, as_json: bool) -> int:
    from audit.cli._findings import echo_findings
    from audit.tracking.ledger_verify import LedgerVerification

    assert isinstance(result, LedgerVerification)
    if as_json:
        emit_json(result.to_json())
    else:
        echo_findings([t.finding() for t in result.findings], err=True)
        for note in result.notes:
            echo(f"note: {printable(note)}", err=True)
        state = "OK" if result.ok else f"FAILED ({len(result.findings)} finding(s))"
        echo(
            f"{state}: {result.origin}: {result.runs_checked} runs, {result.size} seals, "
            f"root {result.root}"
        )
        if result.checkpoint_size is not None:
            verdict = "extends" if result.consistent_with_checkpoint else "does NOT extend"
            echo(f"the log {verdict} the checkpoint of size {result.checkpoint_size}")
        if result.signer:
            echo(f"checkpoint signed by {result.signer}")
    return int(ExitCode.OK if result.ok else ExitCode.CHECK_FAILED)
