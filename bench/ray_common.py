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


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports.

    The probes stay bound until all are chosen: probing one at a time, the kernel may
    hand the same port out twice, and Ray refuses to start when two components share one.
    """
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


# Another process may take a probed port before Ray binds it; a fresh set then starts.
START_ATTEMPTS = 3


class LocalRay:
    def __init__(self, temp_dir: Path, cpus: int = 2) -> None:
        self.temp_dir = temp_dir
        self.cpus = cpus
        self.address = ""
        self.pgid: int | None = None

    def env(self) -> dict[str, str]:
        """What a driver (or the cluster) needs: loopback, and mlaudit importable."""
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, **LOOPBACK_ENV, "PYTHONPATH": path, "RAY_ADDRESS": self.address}

    def start(self) -> LocalRay:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(START_ATTEMPTS):
            log = self._start_once()
            if log is None:
                return self
            if "port" not in log.lower():
                break
        raise RuntimeError(f"ray start failed:\n{log[-2000:]}")

    def _start_once(self) -> str | None:
        """Start the head on fresh ports; None when it started, else its `ray start` log."""
        gcs, client, dashboard, agent = free_ports(4)
        self.address = f"127.0.0.1:{gcs}"
        ray = str(Path(sys.executable).parent / "ray")
        argv = [
            *(ray, "start", "--head", "--node-ip-address=127.0.0.1"),
            f"--port={gcs}",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
            f"--ray-client-server-port={client}",
            f"--dashboard-port={dashboard}",
            # Ports with fixed defaults: free ones, so a user's own cluster may run beside.
            f"--dashboard-agent-listen-port={agent}",
        ]
        log_path = self.temp_dir / "ray-start.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
            )
        self.pgid = process.pid
        if process.wait(timeout=180) == 0:
            return None
        self.stop()
        return log_path.read_text(errors="replace")

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
