"""The body of one Ray task: run a trial on whichever node Ray placed it, and say where.

It runs on a Ray worker, so mlaudit must be importable there (the training image
or the cluster's environment installs it). It yields one event per attempt the
trial starts and then the trial's outcome; the first event also says where it runs
(node, task id, this node's environment fingerprint). It decides nothing and writes no journal;
the driver journals what it yields. `import ray` happens only inside the task.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from audit.protocol import containment
from audit.protocol.trial import TrialSpec, run_trial


@functools.cache
def environment_fingerprint(project_root: str) -> str:
    """sha256 of this node's software environment as provenance keys it (python, lock, image).

    Cached per worker process: a Ray worker runs many trials and its software does
    not change under it.
    """
    from audit.provenance._hashing import sha256_json
    from audit.provenance.environment import describe_environment

    image = os.environ.get("MLAUDIT_IMAGE_DIGEST") or None
    return sha256_json(describe_environment(Path(project_root), image_digest=image).key)


@functools.cache
def node_record(project_root: str) -> dict[str, Any]:
    """Where this worker runs; cached per worker process, which never moves node."""
    import ray

    context = ray.get_runtime_context()
    return {
        "node_id": context.get_node_id(),
        "ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call]
        "hostname": socket.gethostname(),
        "environment": environment_fingerprint(project_root),
    }


# Threads that run trials, kept across tasks: a worker runs one trial after another,
# and starting a thread for each costs more than the trial's own bookkeeping.
_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_idle = threading.Semaphore(0)  # one token per kept thread waiting for a job


def _in_thread(job: Callable[[], None]) -> None:
    """Run `job` on a kept thread, or a new one when all are busy (a trial outliving its task)."""
    _jobs.put(job)
    if not _idle.acquire(blocking=False):
        threading.Thread(target=_serve, name="trial", daemon=True).start()


def _serve() -> None:
    while True:
        _jobs.get()()
        _idle.release()


def trial_task(
    spec: TrialSpec, first_attempt: int, deadline: float | None, project_root: str
) -> Iterator[dict[str, Any]]:
    """Run `spec` here; `deadline` (epoch seconds) is when the signed wall budget runs out."""
    import ray

    # Where it runs travels with the first event: one round trip less per trial.
    node = node_record(project_root)
    where = {
        "node": dict(node),
        "ray_task_id": ray.get_runtime_context().get_task_id(),
        "host": node["hostname"],
    }
    if deadline is not None and time.time() >= deadline:
        yield {"kind": "not_started", **where}
        return
    events: queue.Queue[dict[str, Any]] = queue.Queue()

    def started(pid: int, attempt: int) -> None:
        events.put(
            {
                "kind": "started",
                "attempt": first_attempt + attempt - 1,
                "pid": pid,
                "pid_start": containment.process_start_ticks(pid),
            }
        )

    def run() -> None:
        try:
            outcome = run_trial(spec, started)
            # Shallow: nested values (the metric source's reading) stay dataclasses, which
            # Ray pickles, so the driver rebuilds the very same TrialOutcome.
            fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}
            events.put({"kind": "finished", "outcome": fields})
        except BaseException as error:  # reported to the driver, which fails the trial
            events.put({"kind": "error", "reason": f"{type(error).__name__}: {error}"})

    # A thread runs the trial so this generator can report each attempt as it starts.
    _in_thread(run)
    first = True
    while True:
        event = events.get()
        yield {**event, **where} if first else event
        first = False
        if event["kind"] in ("finished", "error"):
            return
