"""`mlaudit track log` and `mlaudit track flush`: parse, call audit.tracking, render.

MLflow is imported only inside the commands (through audit.tracking.client).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from audit.cli._common import echo, emit_json, json_option
from audit.errors import ExitCode, UsageError

DEFAULT_SPOOL = Path(".mlaudit-spool")
_FILE = click.Path(dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)

tracking_uri_option = click.option(
    "--tracking-uri",
    "tracking_uri",
    required=True,
    envvar="MLFLOW_TRACKING_URI",
    metavar="URI",
    help="MLflow tracking server (default: $MLFLOW_TRACKING_URI).",
)
spool_option = click.option(
    "--spool",
    "spool_dir",
    type=_DIR,
    default=DEFAULT_SPOOL,
    show_default=True,
    envvar="MLAUDIT_SPOOL_DIR",
    help="Where records wait while the server is unreachable.",
)


def read_document(path: Path, schema: str) -> dict[str, Any]:
    """A JSON file checked against schemas/<schema>.schema.json, with pointed errors."""
    from audit.documents import parse_object, read_bytes

    return parse_object(read_bytes(path), str(path), schema)


def _artifact_pairs(values: tuple[str, ...]) -> dict[str, Path]:
    pairs: dict[str, Path] = {}
    for value in values:
        name, sep, local = value.partition("=")
        path = Path(local if sep else name)
        name = name if sep else f"extra/{path.name}"
        if not path.is_file():
            raise UsageError(f"--artifact {value!r}: {path} is not a file")
        pairs[name.strip("/")] = path
    return pairs


def _lock_file(results: dict[str, Any], base: Path) -> dict[str, Path]:
    """The environment lock file named in the provenance, when it is on disk."""
    environment = (results.get("provenance") or {}).get("environment") or {}
    name = environment.get("lock_file")
    if not name:
        return {}
    for candidate in (base / name, Path(name)):
        if candidate.is_file():
            return {f"environment/{Path(name).name}": candidate}
    return {}


@click.command()
@click.argument("results_file", metavar="RESULTS", type=_FILE)
@tracking_uri_option
@click.option("--analysis", "analysis_file", type=_FILE, help="analysis.json to attach.")
@click.option("--experiment", help="MLflow experiment name (default: the EDD id).")
@click.option(
    "--trials-dir",
    type=_DIR,
    help="Folder holding one directory per trial (<arm>/<seed>) whose files are uploaded.",
)
@click.option(
    "--artifact",
    "artifacts",
    multiple=True,
    metavar="[PATH=]FILE",
    help="Extra file for the parent run (repeatable), e.g. approvals/alice.sig=alice.sig.",
)
@spool_option
@json_option
def log(
    results_file: Path,
    tracking_uri: str,
    analysis_file: Path | None,
    experiment: str | None,
    trials_dir: Path | None,
    artifacts: tuple[str, ...],
    spool_dir: Path,
    as_json: bool,
) -> int:
    """Log RESULTS: one parent run and one sealed child run per trial, exactly once."""
    from audit.tracking.client import log_results

    results = read_document(results_file, "results")
    analysis = read_document(analysis_file, "analysis") if analysis_file else None
    if trials_dir is None and (results_file.parent / "trials").is_dir():
        trials_dir = results_file.parent / "trials"
    extra = {**_lock_file(results, results_file.parent), **_artifact_pairs(artifacts)}
    summary = log_results(
        results,
        tracking_uri,
        spool_dir=spool_dir,
        analysis=analysis,
        artifacts=extra,
        trials_dir=trials_dir,
        base_dir=results_file.parent,
        experiment=experiment,
    )
    if as_json:
        emit_json(summary.to_json())
    elif summary.experiment_id is not None:
        echo(
            f"experiment {summary.experiment_id}, parent run {summary.parent_run_id}: "
            f"{len(summary.created)} logged, {len(summary.existing)} already present, "
            f"{len(summary.resumed)} finished after an interruption, "
            f"{len(summary.not_run)} not run"
        )
    if not as_json:
        for trial_id, conflict in sorted(summary.conflicts.items()):
            echo(f"conflict: trial {trial_id} is already logged differently: {conflict}", err=True)
        if summary.spooled:
            echo(
                f"server unreachable: {len(summary.spooled)} trial(s) spooled to "
                f"{summary.spool_file}; run `mlaudit track flush --tracking-uri {tracking_uri} "
                f"--spool {spool_dir}` when it is back",
                err=True,
            )
    failed = summary.spooled or summary.conflicts
    return int(ExitCode.CHECK_FAILED if failed else ExitCode.OK)


@click.command()
@tracking_uri_option
@spool_option
@json_option
def flush(tracking_uri: str, spool_dir: Path, as_json: bool) -> int:
    """Replay spooled records to the server; each trial lands exactly once."""
    from audit.tracking.replay import flush as flush_spool

    summary = flush_spool(tracking_uri, spool_dir)
    if as_json:
        emit_json(summary.to_json())
        return int(ExitCode.OK)
    if not summary.files:
        echo(f"nothing to flush in {spool_dir}")
    for path, result in sorted(summary.files.items()):
        echo(
            f"{path}: {result['created']} logged, {result['existing']} already present, "
            f"{result['resumed']} finished; parent run {result['parent_run_id']}"
        )
    for path in summary.remaining:
        echo(f"{path}: kept (its logger has not closed the execution yet)")
    return int(ExitCode.OK)
