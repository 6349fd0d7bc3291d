"""The Ray executor's wiring that needs no cluster: options, the missing extra, lazy import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audit.errors import UsageError
from audit.protocol.ray_executor import import_ray, task_options


def test_resources_become_task_options_with_ray_retries_off():
    options = task_options({"cpus": 2, "gpus": 0.5, "memory_mb": 1024})
    assert options["num_cpus"] == 2.0
    assert options["num_gpus"] == 0.5
    assert options["memory"] == 1024 * 1024 * 1024
    # Every attempt is the driver's to journal: Ray never retries on its own.
    assert options["max_retries"] == 0
    assert options["retry_exceptions"] is False


def test_no_resources_is_one_cpu_per_trial():
    options = task_options({})
    assert (options["num_cpus"], options["num_gpus"]) == (1.0, 0.0)
    assert "memory" not in options


def test_a_missing_ray_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UsageError) as raised:
        import_ray()
    assert "pip install mlaudit[ray]" in raised.value.user_message()


def test_run_help_does_not_import_ray():
    code = (
        "import sys; from audit.cli.main import main; "
        "main(['ablate', 'run', '--help']); print('RAY', 'ray' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "--executor" in proc.stdout
    assert "RAY False" in proc.stdout


def test_a_worker_keeps_its_trial_thread_and_adds_one_only_while_a_trial_runs_on():
    import threading
    import time

    from audit.protocol import ray_task

    def run(job_blocks: threading.Event | None = None) -> tuple[threading.Thread, threading.Event]:
        ran, ident = threading.Event(), []

        def job() -> None:
            ident.append(threading.current_thread())  # not get_ident(): the OS reuses those
            ran.set()
            if job_blocks is not None:
                job_blocks.wait(10)

        ray_task._in_thread(job)
        assert ran.wait(10)
        return ident[0], ran

    def idle_again() -> None:  # the thread hands its token back just after its job
        deadline = time.monotonic() + 10
        while ray_task._idle._value == 0 and time.monotonic() < deadline:
            time.sleep(0.001)

    first, _ = run()
    idle_again()
    second, _ = run()
    assert second is first  # trial after trial on one thread, none started per task
    idle_again()
    hold = threading.Event()
    busy, _ = run(hold)  # a trial that outlives its task keeps its thread ...
    other, _ = run()  # ... and the next task's trial does not queue behind it
    hold.set()
    assert other is not busy
