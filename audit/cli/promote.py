"""`mlaudit promote`: move a registry alias only on a verified, passing audit bundle."""

from __future__ import annotations

from pathlib import Path

import click

from audit.cli._common import echo, emit_json, json_option, printable
from audit.cli.track_log import tracking_uri_option
from audit.errors import ExitCode

_BUNDLE = click.Path(dir_okay=False, path_type=Path, exists=True)


@click.command()
@tracking_uri_option
@click.option("--bundle", type=_BUNDLE, required=True, help="The study's audit bundle.")
@click.option("--model", required=True, metavar="NAME", help="Registered model name.")
@click.option("--version", "version", required=True, metavar="N", help="Model version to promote.")
@click.option(
    "--alias", default="champion", show_default=True, help="The alias to move to the version."
)
@json_option
def promote(
    tracking_uri: str, bundle: Path, model: str, version: str, alias: str, as_json: bool
) -> int:
    """Move ALIAS of MODEL to VERSION only when the study's evidence allows it.

    \b
    Every condition must hold, or nothing moves and the reason is printed:
      - the bundle verifies offline (`mlaudit bundle verify`);
      - its gate passed;
      - the version was registered from a run the bundle names among its sealed trials;
      - that run on the tracking server still carries the seal the bundle recorded.
    The version is then tagged `mlaudit.promoted_by_bundle` with the bundle's sha256,
    and the registry records the alias move in its append-only history.

    \b
    Example:
      mlaudit promote --tracking-uri http://127.0.0.1:5000 \\
        --bundle audit.bundle.tar.gz --model fraud --version 3 --alias champion
    """
    from audit.tracking.client import connect
    from audit.tracking.promote import promote as promote_version

    done = promote_version(connect(tracking_uri), bundle, model, version, alias)
    if as_json:
        emit_json(done.to_json())
    else:
        echo(
            printable(
                f"promoted: {done.model} version {done.version} is now '{done.alias}' "
                f"(run {done.run_id}; bundle sha256 {done.bundle_sha256[:16]}...)"
            )
        )
    return int(ExitCode.OK)
