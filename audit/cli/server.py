"""`mlaudit server`: run the append-only MLflow server; `mlaudit server init-db URI`."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType

import click

from audit.cli._common import echo, emit_json, json_option
from audit.errors import TrackingError, UsageError

SUPPORTED_SCHEMES = ("mlaudit+sqlite", "mlaudit+postgresql", "sqlite", "postgresql")
SUPERUSER_NOTE = (
    "a database superuser can drop these triggers; only an external checkpoint "
    "(mlaudit track checkpoint, kept outside the server) exposes a rewrite after that"
)


def _store_uri(uri: str) -> str:
    """Accept plain SQLAlchemy URIs too: the store is always the append-only one."""
    scheme = uri.split(":", 1)[0]
    if scheme not in SUPPORTED_SCHEMES:
        raise UsageError(
            f"{uri}: backend store must be sqlite or postgresql "
            "(mlaudit+sqlite:///path.db, mlaudit+postgresql://user@host/db)"
        )
    return uri if uri.startswith("mlaudit+") else f"mlaudit+{uri}"


@click.group(invoke_without_command=True)
@click.option(
    "--backend-store-uri",
    default=None,
    help="mlaudit+sqlite:///path.db or mlaudit+postgresql://... (default: ./mlruns/mlflow.db).",
)
@click.option(
    "--artifacts-destination",
    default=None,
    help="Where served artifacts go (default: ./mlruns/artifacts, write-once).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Server processes (default: 1 on SQLite; on PostgreSQL one per core, up to 3).",
)
@click.option(
    "--http-server",
    type=click.Choice(["gunicorn", "uvicorn"]),
    default="gunicorn",
    show_default=True,
    help="gunicorn serves MLflow's Flask app (tracking, artifacts, registry, UI), about 1.5x "
    "the trials/s; uvicorn adds MLflow 3's FastAPI-only routes (OTLP traces at /v1/traces, "
    "jobs, AI gateway).",
)
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host headers to accept (MLflow's DNS-rebinding guard); set it with --host 0.0.0.0.",
)
@click.option(
    "--gated-alias",
    "gated_aliases",
    multiple=True,
    default=("champion",),
    show_default=True,
    metavar="ALIAS",
    help="A registry alias only `mlaudit promote` may move (repeatable; '' gates none).",
)
@json_option
@click.pass_context
def server(
    ctx: click.Context,
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    host: str,
    port: int,
    workers: int | None,
    http_server: str,
    allowed_hosts: str | None,
    gated_aliases: tuple[str, ...],
    as_json: bool,
) -> int:
    """Run the real `mlflow server` with the append-only, sealing tracking store.

    Runs until interrupted (Ctrl-C or SIGTERM), then stops the whole process group.
    The MLflow UI is served at the printed address. With --json, one JSON line
    (uri, backend, log) is printed once the server answers, for scripts to read.

    The model registry on the same database keeps every version and alias move.
    A gated alias (`champion` by default) can only be moved to a version that
    `mlaudit promote` tagged after checking the study's audit bundle, and whose run
    is sealed; the UI, the REST API and every client get the same refusal.
    """
    if ctx.invoked_subcommand is not None:
        return 0
    from audit.tracking.promote import GATED_ALIASES_ENV
    from audit.tracking.server import (
        ManagedServer,
        default_artifacts_destination,
        default_backend_store_uri,
    )

    managed = ManagedServer(
        backend_store_uri=_store_uri(backend_store_uri or default_backend_store_uri()),
        artifacts_destination=artifacts_destination or default_artifacts_destination(),
        host=host,
        port=port,
        workers=workers,
        http_server=http_server,
        allowed_hosts=allowed_hosts,
        extra_env={GATED_ALIASES_ENV: ",".join(a for a in gated_aliases if a)},
    )
    _stop_on_sigterm()
    with managed:
        from audit.tracking.store import display_uri

        backend = display_uri(managed.backend_store_uri)
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "uri": managed.uri,
                        "backend": backend,
                        "log": str(managed.log_path),
                        "workers": managed.processes,
                        "http_server": managed.http_server,
                        "gated_aliases": [a for a in gated_aliases if a],
                    }
                )
            )
        else:
            echo(
                f"mlaudit server: {managed.uri} (backend {backend}, "
                f"{managed.processes} {managed.http_server} worker "
                f"process{'es' if managed.processes > 1 else ''})"
            )
            echo(f"mlaudit server: log in {managed.log_path}; Ctrl-C stops it")
        try:
            while managed.process is not None and managed.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            echo("mlaudit server: stopping")
            return 0
        code = managed.process.returncode if managed.process else 0
        raise TrackingError(f"mlflow server exited with status {code}; see {managed.log_path}")


def _stop_on_sigterm() -> None:
    # SIGTERM becomes KeyboardInterrupt so the `with` block stops the server's group.
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@server.command("init-db")
@click.argument("uri")
@json_option
def init_db(uri: str, as_json: bool) -> int:
    """Create the MLflow schema, the seal table and the triggers that guard sealed data.

    Run it as the database owner; the server can then run as a role without DDL
    rights. A database superuser can still drop the triggers: only an external
    checkpoint (`mlaudit track checkpoint`) exposes a rewrite after that.
    """
    from audit.tracking import triggers
    from audit.tracking.store import AppendOnlyTrackingStore, display_uri

    store_uri = _store_uri(uri)
    db_path = store_uri.removeprefix("mlaudit+sqlite:///")
    if db_path != store_uri:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        # The same default artifact root as `mlaudit server`: the Default experiment
        # created here keeps it for good.
        store = AppendOnlyTrackingStore(store_uri, "mlflow-artifacts:/")
    except Exception as error:  # a database the user pointed at, not our bug
        raise TrackingError(f"{display_uri(store_uri)}: cannot initialise: {error}") from error
    installed = triggers.installed_triggers(store.engine)
    if as_json:
        emit_json({"uri": display_uri(store_uri), "triggers": installed, "note": SUPERUSER_NOTE})
    else:
        echo(f"{display_uri(store_uri)}: schema, seal table and {len(installed)} triggers ready")
        echo(f"note: {SUPERUSER_NOTE}")
    return 0
