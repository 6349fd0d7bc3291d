"""`mlaudit server` and `mlaudit server init-db` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from audit.tracking.server import free_port


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose argv or environment holds `text` (the server gets its URI by env)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in seen:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_init_db_installs_schema_seals_and_triggers(
    tmp_path: Path, run_mlaudit: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    db = tmp_path / "sub" / "mlflow.db"
    result = run_mlaudit("server", "init-db", f"mlaudit+sqlite:///{db}", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "mlaudit_seals_no_delete" in report["triggers"]
    assert "mlaudit_metrics_sealed_update" in report["triggers"]
    with sqlite3.connect(db) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "metrics", "mlaudit_seals"} <= tables
    again = run_mlaudit("server", "init-db", f"sqlite:///{db}")  # idempotent, plain URI too
    assert again.returncode == 0, again.stderr
    from audit.tracking import triggers

    assert f"{len(triggers.expected_triggers('sqlite'))} triggers ready" in again.stdout
    assert "superuser can drop these triggers" in again.stdout


def test_init_db_refuses_an_unsupported_uri(
    run_mlaudit: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = run_mlaudit("server", "init-db", "mysql://db/x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "must be sqlite or postgresql" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
def test_init_db_on_postgresql_hides_the_password(
    postgres_uri: str, run_mlaudit: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = run_mlaudit("server", "init-db", postgres_uri, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "mlaudit_seals_append_only" in report["triggers"]
    assert ":mlaudit@" not in result.stdout + result.stderr  # the test role's password
    assert "***" in report["uri"]


@pytest.mark.slow
def test_mlaudit_server_serves_and_stops_its_whole_process_group(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "cli.db"
    command = [
        sys.executable,
        "-m",
        "audit",
        "server",
        "--backend-store-uri",
        f"mlaudit+sqlite:///{db}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
        "--port",
        str(port),
    ]
    log = (tmp_path / "cli.out").open("wb")
    cli = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        healthy = False
        while time.monotonic() < deadline and cli.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    healthy = r.status == 200
            except OSError:
                time.sleep(0.5)
        assert healthy, (tmp_path / "cli.out").read_text()
        while "Ctrl-C stops it" not in (tmp_path / "cli.out").read_text():  # past start-up
            assert cli.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.2)
        groups = {os.getpgid(pid) for pid in _processes_mentioning(str(db)) if pid != cli.pid}
        assert groups, "no mlflow server process found"
        assert cli.pid not in groups  # the server runs in a process group of its own
        os.kill(cli.pid, signal.SIGTERM)
        assert cli.wait(timeout=60) == 0
        for group in groups:  # uvicorn workers included: the whole group is gone
            with pytest.raises(ProcessLookupError):
                os.killpg(group, 0)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
        for pid in _processes_mentioning(str(db)):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        log.close()
