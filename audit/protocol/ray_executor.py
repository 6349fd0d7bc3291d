"""The Ray executor: each trial is a Ray task; the driver journals every attempt.

Ray places and runs the tasks (resources from the EDD's `protocol.resources`);
this module only submits them and accounts for each attempt. Ray's own task
retries are off: a retry the engine does silently is an attempt the journal never
sees. Instead, when Ray loses an attempt (worker or node died, object lost, the
node's memory monitor killed it), the loss is journaled as infrastructure and the
trial is submitted again while attempts remain within `max_retries` - unless the
lost attempt had already written the trial's metrics: a trial that produced a
result is never silently run again (that would be seed shopping); it fails,
saying why. A trial that exits non-zero is the trial's failure, retried only for
the EDD's transient exit codes, as in the local pool.

The signed wall budget holds across the cluster: a task that Ray starts after
the budget ran out (by the driver's clock, sent as a deadline) does not start the
trial. `import ray` happens only here, when this executor is chosen.
"""

from __future__ import annotations

import concurrent.futures as futures
import dataclasses
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from audit.errors import ExecutorError, UsageError
from audit.protocol.budget import TrialBudget
from audit.protocol.containment import SUBMISSION_VARIABLE
from audit.protocol.executor import AttemptLog, AttemptStart, NoAttemptLog, Prepare, Started
from audit.protocol.results import utc_now
from audit.protocol.trial import TrialOutcome, TrialSpec

INSTALL_HINT = "pip install mlaudit[ray]"
_OUT_OF_TIME = "the signed wall-clock budget ran out"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "the Ray executor needs the ray package, which is not installed", hint=INSTALL_HINT
        ) from None
    return ray


def task_options(resources: Mapping[str, Any]) -> dict[str, Any]:
    """Ray task options for one trial from the EDD's `protocol.resources`."""
    options: dict[str, Any] = {
        "num_cpus": float(resources.get("cpus", 1)),
        "num_gpus": float(resources.get("gpus", 0)),
        # Every attempt is the driver's to see and journal: no retries inside Ray.
        "max_retries": 0,
        "retry_exceptions": False,
    }
    if "memory_mb" in resources:
        options["memory"] = int(resources["memory_mb"]) * 1024 * 1024
    return options


class RayExecutor:
    """Trials as Ray tasks on the cluster at `address` (None: RAY_ADDRESS, or `auto`)."""

    def __init__(
        self, address: str | None, *, resources: Mapping[str, Any], project_root: Path
    ) -> None:
        self.ray = import_ray()
        self.project_root = str(project_root)
        self.address = address
        try:
            self.ray.init(
                address=address or "auto",
                logging_level="ERROR",
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ExecutorError(
                f"cannot connect to the Ray cluster at {address or 'auto'}: {error}",
                hint="start one with `ray start --head`, or pass --ray-address",
            ) from None
        self.job_id = self.ray.get_runtime_context().get_job_id()
        from audit.protocol.ray_task import trial_task

        self._options = task_options(resources)
        self._task = self.ray.remote(**self._options)(trial_task)
        # One driver thread per trial in flight, each waiting on its task; four times what
        # the cluster can run at once, so a freed slot finds the next trial queued in Ray
        # (and Ray keeps its worker leases) while the driver journals the last one.
        self.slots = 4 * self._capacity()
        self._pool = futures.ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="ray")
        self._refs: dict[str, Any] = {}  # trial id -> its task's generator
        self._stopping = False

    def _capacity(self) -> int:
        total = self.ray.cluster_resources()
        fits = [int(total.get("CPU", 0) // self._options["num_cpus"])]
        if self._options["num_gpus"]:
            fits.append(int(total.get("GPU", 0) // self._options["num_gpus"]))
        if not max(fits, default=0):
            raise ExecutorError(
                f"the Ray cluster at {self.address or 'auto'} has no node with the resources "
                f"one trial needs ({self._resources_text()})",
                hint="see protocol.resources in the EDD",
            )
        return max(1, min(fits))

    def _resources_text(self) -> str:
        return ", ".join(
            f"{key} {self._options[key]:g}"
            for key in ("num_cpus", "num_gpus")
            if key in self._options
        )

    # -- the Executor protocol -------------------------------------------------------
    def submit(
        self,
        spec: TrialSpec,
        budget: TrialBudget,
        log: AttemptLog,
        prepare: Prepare | None = None,
    ) -> futures.Future[Started | None]:
        return self._pool.submit(self._drive, spec, budget, log, prepare)

    def run_one(self, spec: TrialSpec) -> TrialOutcome:
        started = self._drive(spec, None, NoAttemptLog())
        assert started is not None  # without a budget every task may start
        return started.outcome

    def abort(self) -> None:
        self._stopping = True
        for ref in list(self._refs.values()):
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.ray.shutdown()

    # -- one trial -------------------------------------------------------------------
    def _drive(
        self,
        spec: TrialSpec,
        budget: TrialBudget | None,
        log: AttemptLog,
        prepare: Prepare | None = None,
    ) -> Started | None:
        """Submit the trial until it ends on its own terms or its attempts run out."""
        history: list[dict[str, Any]] = []
        attempt = 1
        if prepare is not None and (budget is None or budget.time_left()):
            spec = prepare(spec)  # once: every attempt logs into the same run
        while True:
            result: TrialOutcome | str | None = None
            if budget is None or budget.time_left():
                deadline = None if budget is None else time.time() + budget.seconds_left()
                left = dataclasses.replace(spec, max_retries=max(0, spec.max_retries - attempt + 1))
                task = _Attempt(self, spec.trial_id, attempt, history)
                result = task.run(left, deadline, log)
            if result is None:  # out of wall time, here or when Ray started the task
                if attempt == 1:
                    return None
                return self._ended(history, _failed(f"not retried: {_OUT_OF_TIME}", attempt - 1))
            if isinstance(result, TrialOutcome):
                result.attempts += attempt - 1
                return self._ended(history, result, task.started_at)
            lost = max(attempt, task.last_attempt)
            log.lost(lost, result, task.where)
            refusal = self._no_retry(spec, lost, result)
            if refusal is not None:
                return self._ended(history, _failed(refusal, lost))
            attempt = lost + 1

    def _no_retry(self, spec: TrialSpec, lost: int, why: str) -> str | None:
        """Why a trial whose attempt the engine lost may not be submitted again, if so."""
        if (spec.trial_dir / spec.metrics_file).exists():
            return (
                f"attempt {lost} was lost to the engine ({why}) after the trial wrote its "
                "metrics; not run again (a re-run after a result would be seed shopping)"
            )
        if lost > spec.max_retries or self._stopping:
            return f"lost to the engine on attempt {lost} of {spec.max_retries + 1}: {why}"
        return None

    def _ended(
        self,
        history: list[dict[str, Any]],
        outcome: TrialOutcome,
        at: str | None = None,
    ) -> Started:
        node = next((h["node"] for h in reversed(history) if h.get("node")), None)
        record = {"node": node, "attempt_log": history}
        return Started(outcome, at or utc_now(), record)


class _Attempt:
    """One Ray task of a trial (it may hold several attempts: transient exit codes)."""

    def __init__(
        self, executor: RayExecutor, trial_id: str, first: int, history: list[dict[str, Any]]
    ) -> None:
        self.executor, self.trial_id, self.first = executor, trial_id, first
        self.last_attempt = first
        self.where: dict[str, Any] = {"ray_job_id": executor.job_id}
        self.started_at: str | None = None
        self.entry: dict[str, Any] = {"attempt": first, "ray_job_id": executor.job_id}
        history.append(self.entry)

    def run(
        self, spec: TrialSpec, deadline: float | None, log: AttemptLog
    ) -> TrialOutcome | str | None:
        """The trial's outcome; a string saying why the engine lost it; None: not started."""
        ray = self.executor.ray
        # Journaled before Ray has it: a driver killed before the trial reports its start
        # still leaves the resume a token to find and kill the trial by.
        token = secrets.token_hex(12)
        log.submitted(self.first, token, self.where)
        spec = dataclasses.replace(spec, env={**spec.env, SUBMISSION_VARIABLE: token})
        generator = self.executor._task.remote(
            spec, self.first, deadline, self.executor.project_root
        )
        self.executor._refs[self.trial_id] = generator
        try:
            for event in self._events(generator):
                outcome = self._on(event, log)
                if outcome is not None or event["kind"] == "not_started":
                    return outcome
        except ray.exceptions.RayTaskError as error:  # the task's own code failed: a bug
            cause = getattr(error, "cause", None) or error
            reason = f"the Ray task failed: {type(cause).__name__}: {_first_line(cause)}"
            if isinstance(cause, ImportError):
                reason += " (is mlaudit installed on the Ray nodes?)"
            return self._close("failed", _failed(reason, self.first))
        except ray.exceptions.RayError as error:  # infrastructure: the attempt was lost
            reason = f"{type(error).__name__}: {_first_line(error)}"
            self.entry.update(outcome="lost", reason=reason)
            return reason
        finally:
            self.executor._refs.pop(self.trial_id, None)
        return self._close("failed", _failed("the Ray task ended without an outcome", self.first))

    def _events(self, generator: Any) -> Iterator[dict[str, Any]]:
        ray = self.executor.ray
        for ref in generator:
            yield ray.get(ref)

    def _on(self, event: dict[str, Any], log: AttemptLog) -> TrialOutcome | None:
        kind = event["kind"]
        if "node" in event:  # the task's first event says where it runs
            self.where.update(
                node_id=event["node"]["node_id"],
                ray_task_id=event["ray_task_id"],
                host=event["host"],
            )
            self.entry.update(node=event["node"], ray_task_id=event["ray_task_id"])
        if kind == "not_started":
            self.entry.update(
                outcome="not_started", reason="the wall budget ran out before it began"
            )
        elif kind == "started":
            self.started_at = self.started_at or utc_now()
            self.last_attempt = int(event["attempt"])
            log.started(
                AttemptStart(self.last_attempt, event["pid"], event["pid_start"], dict(self.where))
            )
        elif kind == "finished":
            outcome = TrialOutcome(**event["outcome"])
            return self._close(outcome.status, outcome)
        elif kind == "error":
            return self._close(
                "failed", _failed(f"the trial could not run: {event['reason']}", self.first)
            )
        return None

    def _close(self, status: str, outcome: TrialOutcome) -> TrialOutcome:
        self.entry.update(outcome=status, reason=outcome.reason)
        return outcome


def _failed(reason: str, attempts: int) -> TrialOutcome:
    return TrialOutcome("failed", reason=reason, attempts=attempts)


def _first_line(error: BaseException) -> str:
    from audit.protocol.metrics import printable

    lines = str(error).strip().splitlines()
    return printable(lines[0], 300) if lines else type(error).__name__
