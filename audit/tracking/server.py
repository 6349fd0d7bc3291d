"""Start and stop a real `mlflow server` with the append-only store, as one process group.

`mlflow server` 3.x forks workers (gunicorn's or uvicorn's, and for plain SQL URIs
huey consumers) that may outlive a SIGTERM to the parent; a leftover child holding
the output pipe can hang CI. So the server always gets its own session and is
stopped by group: SIGTERM the group, wait, SIGKILL the group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from audit.errors import TrackingError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_ROOT = Path("mlruns")
STARTUP_TIMEOUT_S = 120.0
STOP_GRACE_S = 10.0

# Nothing phones home (DESIGN.md); regulated users need that.
QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}

# MLflow's SQLAlchemy pool for a PostgreSQL store, per server worker, unless the user set
# these. Its default (5 kept, 10 more on demand) closes every connection beyond the fifth
# as soon as it is returned, so a study's loggers (dozens of requests at once) make the
# server open a fresh PostgreSQL session (a forked backend, a SCRAM handshake, cold
# caches) every request or two; 15 kept covers that load. 25 in all stays above what
# keyed creates may hold at once (audit/tracking/store.py), and four workers stay
# within PostgreSQL's default max_connections (100).
POSTGRES_POOL = {
    "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "15",
    "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "10",
}


# Server processes when the user names none. One server process is bound by its own
# Python (request parsing, SQLAlchemy, the seal's record: about one core at 10-20
# trials/s), so on PostgreSQL, which takes concurrent writers, one per core (1.6x the
# trials/s of one on 2 cores, bench/tracking_scale.py), up to three: three pools of 25
# stay inside PostgreSQL's default max_connections (100, three of them reserved).
# SQLite keeps one: every write there takes the one database lock in turn (more
# processes on SQLite were not measured).
MAX_DEFAULT_POSTGRES_WORKERS = 3

# How MLflow's app is served. gunicorn (MLflow's own option, `--gunicorn-opts`) runs the
# Flask app: every tracking, artifact, registry and UI endpoint, with MLflow's Host and
# CORS guards. uvicorn (`mlflow server`'s default) wraps that same Flask app in FastAPI,
# which adds MLflow 3's FastAPI-only routes (OTLP trace ingestion at /v1/traces, jobs,
# the AI gateway, the assistant) and costs the ASGI layers on every request: about 45%
# of a worker's CPU under a study's loggers. Served by gunicorn, 1,000 trials from 20
# shards on PostgreSQL (bench/tracking_scale.py, 2 workers) took 57.0/68.4/50.3 s
# against 80.2/90.0/93.5 s by uvicorn, interleaved.
HTTP_SERVERS = ("gunicorn", "uvicorn")
DEFAULT_HTTP_SERVER = "gunicorn"
# Threads per gunicorn worker. Requests wait on the database, so a few run side by side;
# but a seal holds its experiment's lock across its round trips, and each return from
# the database waits for the GIL behind the worker's other threads. Measured with 1,000
# trials from 20 shards on PostgreSQL: 8 threads held the lock 40-46 ms per seal, 3
# threads 18 ms (11 ms once the seal's writes went into one flush, 6 ms with 2). A
# thread holds at most three pooled connections (store.py).
GUNICORN_THREADS = 4
# Longer than the loggers' pauses between requests, so their pooled connections are
# reused instead of being closed under them (gunicorn's default is 2 s).
GUNICORN_KEEPALIVE_S = 30
# Closes a connection after a few requests, so loggers spread over the workers as they go
# (see the module).
GUNICORN_HOOKS = "audit.tracking.gunicorn_hooks"


def default_workers(backend_store_uri: str) -> int:
    """Server processes for a store when the user names none (see above)."""
    if plain_scheme(backend_store_uri).startswith("postgresql"):
        return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_POSTGRES_WORKERS))
    return 1


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def default_backend_store_uri(root: Path = DEFAULT_ROOT) -> str:
    """The embedded default: a SQLite file under ./mlruns, through the append-only store."""
    return f"mlaudit+sqlite:///{(root / 'mlflow.db').resolve()}"


def default_artifacts_destination(root: Path = DEFAULT_ROOT) -> str:
    return f"mlaudit+file://{(root / 'artifacts').resolve()}"


def guarded_artifacts_destination(destination: str) -> str:
    """Route a local artifact destination through the write-once guard (audit/tracking/artifacts).

    A plain path or file: URI becomes `mlaudit+file://...`; other schemes (s3, gs)
    are passed through: their protection is the object store's retention lock.
    """
    if destination.startswith("mlaudit+"):
        return destination
    if destination.startswith("file://"):
        return "mlaudit+" + destination
    if "://" not in destination:
        return f"mlaudit+file://{Path(destination).resolve()}"
    return destination


def registry_store_uri(backend_store_uri: str) -> str:
    """The registry URI for a backend: append-only when this install offers that plugin."""
    from importlib.metadata import entry_points

    scheme = backend_store_uri.split(":", 1)[0]
    if scheme.startswith("mlaudit+"):
        offered = {e.name for e in entry_points(group="mlflow.model_registry_store")}
        if scheme not in offered:
            return backend_store_uri.removeprefix("mlaudit+")
    return backend_store_uri


def plain_scheme(backend_store_uri: str) -> str:
    """`mlaudit+postgresql://...` -> `postgresql` (driver suffixes kept: `postgresql+psycopg`)."""
    return backend_store_uri.split(":", 1)[0].removeprefix("mlaudit+")


def _sqlite_path(backend_store_uri: str) -> Path | None:
    for prefix in ("mlaudit+sqlite:///", "sqlite:///"):
        if backend_store_uri.startswith(prefix):
            return Path(backend_store_uri[len(prefix) :])
    return None


@dataclass
class ManagedServer:
    """`with ManagedServer(...) as server:` runs `mlflow server` until the block ends."""

    backend_store_uri: str = field(default_factory=default_backend_store_uri)
    artifacts_destination: str = field(default_factory=default_artifacts_destination)
    host: str = DEFAULT_HOST
    port: int = 0  # 0: pick a free port
    workers: int | None = None  # None: default_workers(backend_store_uri)
    http_server: str = DEFAULT_HTTP_SERVER  # one of HTTP_SERVERS (see above)
    # Host headers MLflow's security middleware accepts; needed when binding beyond loopback.
    allowed_hosts: str | None = None
    log_path: Path | None = None  # where the server's output goes (default: beside the DB)
    extra_env: dict[str, str] = field(default_factory=dict)
    startup_timeout: float = STARTUP_TIMEOUT_S
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def backend_uri(self) -> str:
        return self.backend_store_uri

    @property
    def processes(self) -> int:
        """Server processes: as given, else the store's default."""
        return self.workers or default_workers(self.backend_store_uri)

    @property
    def db_path(self) -> Path | None:
        """The SQLite file behind the server, or None for PostgreSQL."""
        return _sqlite_path(self.backend_store_uri)

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            # The store URIs travel in the environment (see `environment`): argv is
            # visible to every local user, and a PostgreSQL URI may hold a password.
            "--artifacts-destination",
            guarded_artifacts_destination(self.artifacts_destination),
            "--serve-artifacts",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.processes),
            *(["--allowed-hosts", self.allowed_hosts] if self.allowed_hosts else []),
            *self._http_server_options(),
        ]

    def _http_server_options(self) -> list[str]:
        if self.http_server == "uvicorn":
            return []  # mlflow server's default
        if self.http_server != "gunicorn":
            raise TrackingError(
                f"http server {self.http_server!r}: expected one of {', '.join(HTTP_SERVERS)}"
            )
        options = (
            f"--worker-class gthread --threads {GUNICORN_THREADS} "
            f"--keep-alive {GUNICORN_KEEPALIVE_S} --config python:{GUNICORN_HOOKS}"
        )
        return ["--gunicorn-opts", options]

    def environment(self) -> dict[str, str]:
        """What the server process gets on top of ours: quiet flags, the store URIs and,
        on PostgreSQL, a connection pool sized for many loggers (what the user set wins)."""
        pool = {}
        if plain_scheme(self.backend_store_uri).startswith("postgresql"):
            pool = {k: v for k, v in POSTGRES_POOL.items() if k not in os.environ}
        return {
            **QUIET_ENVIRONMENT,
            **pool,
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            # The append-only registry when its entry point is installed (it came
            # after the tracking store: an older install still has MLflow's own).
            "MLFLOW_REGISTRY_STORE_URI": registry_store_uri(self.backend_store_uri),
            **self.extra_env,
        }

    def start(self) -> ManagedServer:
        if self.port == 0:
            self.port = free_port(self.host)
        db_path = self.db_path
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path or (
            db_path.parent / "mlflow-server.log" if db_path else Path("mlflow-server.log")
        )
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = {**os.environ, **self.environment()}
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self._warm_up()
        return self

    def _warm_up(self) -> None:
        """One run search per worker before anyone logs: MLflow's Flask app imports its
        search machinery on the first search (about 0.45 s, measured by the first `track
        log` into a fresh server), which its FastAPI app (uvicorn) does at start. Each
        request is a new connection, which an idle worker takes; a miss only costs the
        first search its import, as before."""
        body = json.dumps(
            {"experiment_ids": ["0"], "max_results": 1, "filter": "tags.`mlaudit.warm` = 'up'"}
        ).encode()
        for _ in range(self.processes):
            # Our own http URL, never a user's file: URL.
            request = urllib.request.Request(  # noqa: S310
                f"{self.uri}/api/2.0/mlflow/runs/search",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with contextlib.suppress(OSError):  # URLError is an OSError
                urllib.request.urlopen(request, timeout=10).close()  # noqa: S310

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise TrackingError(
                    f"mlflow server exited with status {self.process.returncode} "
                    f"before it was ready; see {self.log_path}"
                )
            if self._healthy():
                return
            time.sleep(0.25)
        raise TrackingError(
            f"mlflow server did not answer {self.uri}/health within "
            f"{self.startup_timeout:.0f} s; see {self.log_path}"
        )

    def _healthy(self) -> bool:
        url = f"{self.uri}/health"  # our own http URL, never a user's file: URL
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever of the group is left."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE_S)
            # Uvicorn workers and huey consumers may ignore the parent's SIGTERM.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
