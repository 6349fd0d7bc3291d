"""A throwaway single-node Ray cluster on 127.0.0.1, for the Ray benchmark and tests.

`ray start --head` in its own process group with its session files in a temp dir,
stopped by group (SIGTERM, wait, SIGKILL) so nothing it started outlives it.
Ray's auth defaults are left as they are. On Linux, Ray resolves 127.0.0.1 to the
machine's address unless told the cluster is single-node, which
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 does (for `ray start` and every driver).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalRay:
    def __init__(self, temp_dir: Path, cpus: int = 2) -> None:
        self.temp_dir = temp_dir
        self.cpus = cpus
        self.address = f"127.0.0.1:{free_port()}"
        self.pgid: int | None = None

    def env(self) -> dict[str, str]:
        """What a driver (or the cluster) needs: loopback, and mlaudit importable."""
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, **LOOPBACK_ENV, "PYTHONPATH": path, "RAY_ADDRESS": self.address}

    def start(self) -> LocalRay:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        ray = str(Path(sys.executable).parent / "ray")
        argv = [
            *(ray, "start", "--head", "--node-ip-address=127.0.0.1"),
            f"--port={self.address.rsplit(':', 1)[1]}",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-port={free_port()}",
            # Ports with fixed defaults: free ones, so a user's own cluster may run beside.
            f"--dashboard-agent-listen-port={free_port()}",
        ]
        with (self.temp_dir / "ray-start.log").open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
            )
        self.pgid = process.pid
        if process.wait(timeout=180) != 0:
            self.stop()
            tail = (self.temp_dir / "ray-start.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"ray start failed:\n{tail}")
        return self

    def stop(self) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
            # gcs_server may sit out a SIGTERM; a throwaway cluster has nothing to flush.
            deadline = time.monotonic() + 3
            while _alive_in_group(self.pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(self.pgid, signal.SIGKILL)
        self.pgid = None

    def __enter__(self) -> LocalRay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive_in_group(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies init has yet to reap do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
