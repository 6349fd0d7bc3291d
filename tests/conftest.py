"""Shared test fixtures.

Tests may reach only loopback: the guard below refuses any other connection, so
a test that would phone home fails loudly instead of hanging on a closed network.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like never leave the machine
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise OSError(f"tests may reach only loopback; refused connection to {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise OSError(f"tests may reach only loopback; refused connection to {address!r}")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `mlaudit ARGS...` in-process and capture what it prints."""
    from audit.cli.main import main

    def run(*args: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()
        code = main([os.fspath(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


@pytest.fixture
def run_mlaudit() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m audit ARGS...` as a real subprocess (for stdin, signals, exit codes)."""

    def run(*args: str | os.PathLike[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [sys.executable, "-m", "audit", *[os.fspath(a) for a in args]],
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )

    return run


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty real git repository with an identity configured."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env_git = ["git", "-C", str(repo)]
    subprocess.run([*env_git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*env_git, "config", "user.email", "test@example.com"], check=True)
    subprocess.run([*env_git, "config", "user.name", "Test"], check=True)
    subprocess.run([*env_git, "config", "commit.gpgsign", "false"], check=True)
    return repo


# -- tracking: one real `mlflow server` per session, and PostgreSQL (issue 5) --------


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """ONE real `mlflow server` for the whole session, with the append-only store.

    Yields an `audit.tracking.server.ManagedServer`: `.uri` (http://127.0.0.1:PORT),
    `.db_path` (the SQLite file), `.backend_uri` (mlaudit+sqlite:///...). It runs in its
    own process group and is stopped by group (SIGTERM, wait, SIGKILL) at the end.
    Tests share it: each creates its own experiment (uuid in the name).
    """
    from audit.tracking.server import ManagedServer

    root = tmp_path_factory.mktemp("mlflow")
    server = ManagedServer(
        backend_store_uri=f"mlaudit+sqlite:///{root / 'mlflow.db'}",
        artifacts_destination=str(root / "artifacts"),
        workers=2,
        log_path=root / "mlflow-server.log",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


POSTGRES_URI_ENV = "MLAUDIT_TEST_POSTGRES_URI"
# What tests/tools/system-deps.sh sets up (role mlaudit, password mlaudit, CREATEDB).
DEFAULT_POSTGRES_URI = "postgresql://mlaudit:mlaudit@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_uri() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this session (dropped at the end).

    Skips, saying why, when no server answers: run `make system-deps` as root (it
    installs and starts Debian's postgresql) or set MLAUDIT_TEST_POSTGRES_URI to a
    URI whose role may CREATE DATABASE.
    """
    import uuid

    try:
        import psycopg
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg (pip install -e '.[dev]')")
    base = os.environ.get(POSTGRES_URI_ENV, DEFAULT_POSTGRES_URI)
    try:
        admin = psycopg.connect(base, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[0]
        pytest.skip(
            f"no PostgreSQL server at {base.split('@')[-1]} ({reason}); run "
            f"`make system-deps` as root or set {POSTGRES_URI_ENV}"
        )
    name = f"mlaudit_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    prefix, _, _ = base.rpartition("/")
    try:
        yield f"{prefix}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="session")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real RFC 3161 timestamp authority on loopback (`openssl ts -reply` over HTTP)."""
    from tsa_server import running_authority

    with running_authority(tmp_path_factory.mktemp("tsa")) as authority:
        yield authority
