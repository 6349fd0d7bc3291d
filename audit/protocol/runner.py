"""Execute a plan: schedule trials on an executor (local pool, Ray), journaled and cached.

The runner owns the order of events. Executors only run trials (audit.protocol.executor)
and report their attempts; the main thread
journals each finished trial (fsynced) before anything else hears of it, then
fills the cache and the tracking server. On --resume the replayed journal
(audit.protocol.journal_replay) says which trials finished: those are never run
again; trials a killed runner left mid-flight have their process groups killed
(audit.protocol.containment) and start over. The budget (audit.protocol.budget)
says whether a trial may start; the determinism re-run is compared and recorded
by audit.protocol.determinism.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import fcntl
import functools
import socket
import time
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from audit.errors import UsageError
from audit.protocol import containment
from audit.protocol.budget import TrialBudget, check_plan_fits
from audit.protocol.cache import TrialCache
from audit.protocol.determinism import ReproducibilityRule, not_rerun, rerun_result
from audit.protocol.early_stop import FirstTrialWatch
from audit.protocol.executor import (
    AttemptStart,
    Executor,
    LocalExecutor,
    NoAttemptLog,
    Started,
)
from audit.protocol.foreign_runs import foreign_runs
from audit.protocol.journal import JOURNAL_NAME, Journal
from audit.protocol.journal_replay import Replay, check_resume, open_session, replay_journal
from audit.protocol.metric_sources import MetricSource
from audit.protocol.metric_sources.trial_run import with_trial_run
from audit.protocol.plan import Arm, Plan, Trial
from audit.protocol.preflight import Preflight, check_command
from audit.protocol.progress import NoProgress, ProgressSink
from audit.protocol.results import (
    RESULTS_NAME,
    preload_schema_check,
    results_header,
    utc_now,
    write_json,
)
from audit.protocol.shards import format_shard, shard_trials
from audit.protocol.trial import TrialOutcome, TrialSpec, expand_command, trial_env
from audit.provenance.record import trial_fingerprint

TRIALS_DIR = "trials"
RERUN_DIR = "reproducibility"
# Group commit: a trial that finishes waits at most this long for others to share its
# fsync. Short trials (tens of ms) otherwise pay one journal fsync each, and the disk
# flush costs the CPU they run on; a person or a tracking server never notices 50 ms.
GROUP_COMMIT_SECONDS = 0.05
# Rounds: with trials of a few tens of milliseconds the scheduler would wake for each
# one that finishes. Each wake is one more thread the kernel places beside the running
# trials, and placed behind one it leaves another CPU idle for milliseconds (perf sched
# on bench/protocol_xargs). So between two rounds the scheduler pauses up to this long,
# never longer than the local pool's queued trials last (round_pause), and the next
# round takes every trial that finished meanwhile. Trials of seconds or more never
# notice: the pause comes before the wait, which returns as soon as one of them ends.
ROUND_PAUSE_SECONDS = 0.02


@dataclass(frozen=True)
class _ArmValues:
    arm: Arm
    argv: tuple[str, ...]


class TrialLogger(Protocol):
    """What the runner needs from tracking (audit.tracking.client.ProtocolLogger)."""

    def log_trial(self, trial: Mapping[str, Any], trial_dir: Path | None = None) -> str | None: ...

    def open_trial_run(self, arm: str, seed: int, *, rerun: bool = False) -> str: ...

    def end_trial_run(self, run_id: str, status: str) -> None: ...


@dataclass
class RunRequest:
    """Plain values the CLI gathered: the verified EDD, the plan, provenance, settings."""

    edd: Mapping[str, Any]  # results.json `edd`: id, version, digest, path, document
    plan: Plan
    planned_trial_count: int  # budgeted count, reproducibility re-run included
    provenance: Mapping[str, Any]  # Provenance.to_dict()
    project_root: Path
    out_dir: Path
    base_env: Mapping[str, str]
    workers: int = 1
    shard: tuple[int, int] | None = None
    resume: bool = False
    cache_dir: Path | None = None
    approvals: Sequence[Mapping[str, Any]] = ()
    trust: Mapping[str, Any] | None = None
    progress: ProgressSink = field(default_factory=NoProgress)
    logger_factory: Callable[[dict[str, Any]], TrialLogger] | None = None
    tracking_uri: str | None = None
    runner_python: str | None = None  # to say when the trials' python is another one
    # Where trials run (audit.protocol.executor); None: the local pool of `workers`.
    executor_factory: Callable[[RunRequest], Executor] | None = None
    # A provenance check still running (`dvc status`): it does not gate a trial's start,
    # so trials may start meanwhile, but no result is journaled, cached, logged or shown
    # before it has passed; if it fails the run stops and none of its trials counts.
    data_check: futures.Future[None] | None = None


@dataclass
class RunOutcome:
    results: dict[str, Any]
    path: Path
    logger: TrialLogger | None = None
    preflight: Preflight | None = None

    def count(self, status: str) -> int:
        return sum(1 for t in self.results["trials"] if t["status"] == status)

    def unsuccessful(self) -> list[dict[str, Any]]:
        """Planned trials (of this shard) that did not succeed: failed, timed out, not run."""
        return [t for t in self.results["trials"] if t["status"] != "succeeded"]


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One runner per out dir: a second one would interleave the journal."""
    with open(out_dir / ".lock", "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another mlaudit run is using {out_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class Runner:
    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.plan = request.plan
        self.document = request.edd["document"]
        self.protocol = self.document["protocol"]
        self.out_dir = request.out_dir.resolve()
        self.shard_label = format_shard(*request.shard) if request.shard else None
        self.cache = TrialCache(request.cache_dir) if request.cache_dir else None
        self.header = results_header(
            edd=request.edd,
            plan=self.plan.to_dict(),
            provenance=request.provenance,
            approvals=request.approvals,
            trust=request.trust,
            shard=self.shard_label,
        )
        self.logger: TrialLogger | None = None
        self._session_started = time.monotonic()
        self._wall_offset = 0.0
        self.executor: Executor | None = None
        self._interrupted: dict[str, dict[str, Any]] = {}  # trial id -> its last `started`
        self.preflight: Preflight | None = None
        self.watch = FirstTrialWatch(())
        self._typical_seconds: float | None = None  # a trial's recent duration, smoothed
        self._data_check: futures.Future[None] | None = None  # set by run()
        self._rerun: _Rerun | None = None  # set by _execute when the plan re-runs a trial
        # The same for every trial of the run: read from the EDD once, not per trial.
        self._via = str(self.protocol.get("overrides_via", "argv"))
        self._arms: dict[str, _ArmValues] = {}

    # -- trial preparation ------------------------------------------------------
    def _trial_dir(self, trial: Trial, root: str = TRIALS_DIR) -> Path:
        return self.out_dir / root / trial.arm / str(trial.seed)

    def _arm_values(self, name: str) -> _ArmValues:
        """What a trial takes from its arm, computed once per arm (hundreds of trials share it)."""
        values = self._arms.get(name)
        if values is None:
            arm = self.plan.arm(name)
            values = _ArmValues(
                arm=arm,
                argv=expand_command(self.plan.command, arm.overrides, via=self._via),
            )
            self._arms[name] = values
        return values

    @functools.cached_property
    def _spec_constants(self) -> dict[str, Any]:
        """TrialSpec fields that are the same for every trial of the run."""
        metrics = self.document["metrics"]
        required = [metrics["primary"]["name"]] + [m["name"] for m in metrics.get("secondary", [])]
        via = self._via
        return {
            "cwd": self.request.project_root / str(self.protocol.get("workdir", ".")),
            "timeout_seconds": float(self.document["budget"]["trial_timeout_seconds"]),
            "metrics_file": str(metrics.get("file", "metrics.json")),
            "required_metrics": tuple(required),
            "transient_exit_codes": frozenset(self.protocol.get("transient_exit_codes", [])),
            "max_retries": int(self.protocol.get("max_retries", 0)),
            "params_file": str(self.protocol.get("params_file", "params.yaml"))
            if via == "params_file"
            else None,
            "metric_source": self._metric_source,
        }

    @functools.cached_property
    def _metric_source(self) -> MetricSource:
        return MetricSource.from_document(self.document)

    @functools.cached_property
    def _source_env(self) -> dict[str, str]:
        return self._metric_source.env()

    @functools.cached_property
    def _edd_id(self) -> str | None:
        return str(self.request.edd.get("id") or "") or None

    def _spec(self, trial: Trial, trial_dir: Path) -> TrialSpec:
        values = self._arm_values(trial.arm)
        return TrialSpec(
            trial_id=trial.trial_id,
            arm=trial.arm,
            seed=trial.seed,
            argv=values.argv,
            trial_dir=trial_dir,
            env=trial_env(
                self.request.base_env,
                seed=trial.seed,
                arm=trial.arm,
                trial_dir=trial_dir,
                trial_id=trial.trial_id,
                edd_id=self._edd_id,
            )
            | self._source_env,
            params=values.arm.config if self._via == "params_file" else None,
            **self._spec_constants,
        )

    @functools.cached_property
    def _fingerprint_extra(self) -> dict[str, Any]:
        return {
            "workdir": self.protocol.get("workdir", "."),
            "overrides_via": self._via,
            "params_file": self.protocol.get("params_file", "params.yaml"),
            "metrics": self.document["metrics"],
            **(
                {"metrics_source": source}
                if (source := self.protocol.get("metrics_source"))
                else {}
            ),
        }

    def _fingerprint(self, trial: Trial) -> str:
        values = self._arm_values(trial.arm)
        return trial_fingerprint(
            str(self.request.provenance["fingerprint"]),
            config_sha256=values.arm.config_sha256,
            seed=trial.seed,
            command=values.argv,
            extra=self._fingerprint_extra,
        )

    # -- records ------------------------------------------------------------------
    def _record(self, trial: Trial, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "arm": trial.arm,
            "seed": trial.seed,
            "status": "not_run",
            "metrics": {},
            "duration_seconds": None,
            "attempts": 0,
            "exit_code": None,
            "reason": None,
            "fingerprint": None,
            "cached_from": None,
            "mlflow_run_id": None,
            "shard": self.shard_label,
            "started_at": None,
            "finished_at": None,
        }
        record.update(fields)
        return record

    def _from_outcome(
        self, trial: Trial, outcome: TrialOutcome, fingerprint: str, started_at: str
    ) -> dict[str, Any]:
        trial_dir = self._trial_dir(trial)
        # W&B / ClearML runs the trial made itself; recorded only when there are some.
        foreign = foreign_runs(trial_dir)
        source = {} if outcome.source is None else outcome.source.fields(self._metric_source.kind)
        return self._record(
            trial,
            status=outcome.status,
            metrics=outcome.metrics,
            duration_seconds=round(outcome.duration_seconds, 6),
            attempts=outcome.attempts,
            exit_code=outcome.exit_code,
            reason=outcome.reason,
            fingerprint=fingerprint,
            started_at=started_at,
            finished_at=utc_now(),
            trial_dir=trial_dir.relative_to(self.out_dir).as_posix(),
            **({"foreign_runs": foreign} if foreign else {}),
            **source,
        )

    def _check_tracking_for_source(self) -> None:
        if self._metric_source.in_trial_run and (
            self.request.logger_factory is None or self.request.tracking_uri is None
        ):
            raise UsageError(
                "the EDD's protocol.metrics_source is mlflow: each trial logs into its own "
                "run on the tracking server, so ablate run needs --tracking-uri"
            )

    def _logging_into_run(self, spec: TrialSpec, trial: Trial, *, rerun: bool = False) -> TrialSpec:
        """For metric source mlflow: the spec with the trial's own open run to log into."""
        if not self._metric_source.in_trial_run:
            return spec
        assert self.logger is not None
        assert self.request.tracking_uri is not None
        run_id = self.logger.open_trial_run(trial.arm, trial.seed, rerun=rerun)
        return with_trial_run(spec, self.request.tracking_uri, run_id)

    def _from_cache(
        self, trial: Trial, entry: Mapping[str, Any], fingerprint: str
    ) -> dict[str, Any]:
        now = utc_now()
        return self._record(
            trial,
            status="succeeded",
            metrics=dict(entry["metrics"]),
            duration_seconds=entry.get("duration_seconds"),
            attempts=0,
            exit_code=entry.get("exit_code", 0),
            fingerprint=fingerprint,
            cached_from=str(entry["trial_id"]),
            cached_from_dir=entry.get("out_dir"),
            started_at=now,
            finished_at=now,
        )

    # -- journal ------------------------------------------------------------------
    def _stamp(self) -> float:
        return round(self._wall_offset + (time.monotonic() - self._session_started), 3)

    def _open_journal(self) -> tuple[Journal, Replay]:
        path = self.out_dir / JOURNAL_NAME
        replay = replay_journal(path)
        check_resume(replay, self._identity(), resume=self.request.resume, out_dir=self.out_dir)
        if replay.header is not None:
            # A process group is ours to kill only on the machine that started it.
            here = socket.gethostname()
            containment.kill_leftovers([e for e in replay.in_flight if e.get("host", here) == here])
            containment.sweep_submission(
                *(e["submission"] for e in replay.in_flight if isinstance(e.get("submission"), str))
            )
        self._wall_offset = replay.wall_seconds
        self._interrupted = {str(e["trial_id"]): e for e in replay.in_flight}
        held = self._data_check is not None
        return open_session(path, replay, self._identity(), held=held), replay

    def _identity(self) -> dict[str, Any]:
        """What a resume must match: the journal header's fields (journal_replay.IDENTITY)."""
        return {
            "edd_digest": self.request.edd["digest"],
            "plan_sha256": self.plan.sha256,
            "provenance_fingerprint": self.request.provenance["fingerprint"],
            "shard": self.shard_label,
        }

    # -- the run ------------------------------------------------------------------
    def run(self) -> RunOutcome:
        check_plan_fits(self.request.planned_trial_count, self.document["budget"])
        self._check_tracking_for_source()
        if self._metric_source.in_trial_run:
            # Trials read their runs back with MLflow's client, from the worker threads;
            # two threads importing it at once trip over MLflow's circular imports
            # (ImportError, partially initialized mlflow.tracking). One import, here.
            import mlflow.tracking  # noqa: F401
        self.preflight = self._preflight()
        self._data_check = self.request.data_check
        if not self._may_overlap_data_check():
            self._wait_for_data_check()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.out_dir):
            factory = self.request.executor_factory
            # Opened before the journal: an engine that cannot be reached changes nothing.
            self.executor = (
                factory(self.request) if factory else LocalExecutor(self.request.workers)
            )
            try:
                outcome = self._run_journaled()
            finally:
                self.executor.close()
        outcome.preflight = self.preflight
        return outcome

    # -- a data check still running ---------------------------------------------------
    def _may_overlap_data_check(self) -> bool:
        """Trials may start before the data check answers only where nothing they do
        before finishing is public or left behind: a fresh run in the local pool (killed
        with mlaudit), metrics from the trial dir (no run opened on the server first)."""
        return (
            self._data_check is not None
            and self.request.executor_factory is None
            and not self._metric_source.in_trial_run
            and not (self.out_dir / JOURNAL_NAME).exists()
        )

    def _wait_for_data_check(self) -> None:
        """Block until the data check answers; its ProvenanceError stops the run."""
        check, self._data_check = self._data_check, None
        if check is not None:
            check.result()

    def _data_check_pending(self, journal: Journal) -> bool:
        """Still out: True. Answered: False, the held journal written and the logger
        opened; a failed check raises (the caller stops the trials)."""
        if self._data_check is None:
            return False
        if not self._data_check.done():
            return True
        self._wait_for_data_check()
        self._publish_run(journal)
        return False

    def _publish_run(self, journal: Journal) -> None:
        journal.release()
        if self.request.logger_factory is not None and self.logger is None:
            self.logger = self.request.logger_factory(self.header)

    def _preflight(self) -> Preflight:
        """Refuse before any trial when the command cannot start; say what will run."""
        baseline = self.plan.arm("baseline")
        via = str(self.protocol.get("overrides_via", "argv"))
        preflight = check_command(
            expand_command(self.plan.command, baseline.overrides, via=via),
            self.request.project_root / str(self.protocol.get("workdir", ".")),
            self.request.base_env,
            source=str(self.request.edd.get("path", "edd.yaml")),
            runner_python=self.request.runner_python,
        )
        self.request.progress.note(f"pre-flight: {preflight.describe()}")
        for note in preflight.notes():
            self.request.progress.note(f"pre-flight: note: {note}")
        return preflight

    def _run_journaled(self) -> RunOutcome:
        journal, replay = self._open_journal()
        with journal:
            if self._data_check is None:
                self._publish_run(journal)
            results = self._execute(journal, replay)
            path = self.out_dir / RESULTS_NAME
            write_json(results, path)  # checks the schema before writing
            journal.append({"event": "end", "at": utc_now(), "monotonic_wall": self._stamp()})
        return RunOutcome(results, path, self.logger)

    def _execute(self, journal: Journal, replay: Replay) -> dict[str, Any]:
        request = self.request
        trials = list(self.plan.trials)
        if request.shard:
            trials = shard_trials(trials, *request.shard)
        records = dict(replay.finished)
        budget = TrialBudget(self.document["budget"], replay.executed_trials(), replay.wall_seconds)
        for trial_id in replay.untracked():
            self._track(journal, records[trial_id], catch_up=True)
        pending = [t for t in trials if t.trial_id not in records]
        target = Trial(*self.plan.reproducibility, index=-1)
        if (
            replay.reproducibility is None
            and "reproducibility" in self.document
            and any(t.trial_id == target.trial_id for t in trials)
        ):
            self._rerun = _Rerun(target, ReproducibilityRule.from_document(self.document))
        preload_schema_check()
        self.watch = FirstTrialWatch(t.arm for t in pending)
        request.progress.start(len(trials), len(trials) - len(pending))
        try:
            self._schedule(journal, pending, records, budget)
        finally:
            request.progress.finish()
        reproducibility = replay.reproducibility
        if self._rerun is not None:
            if self._rerun.result is None:  # its original never ran (budget, early stop)
                self._start_rerun(journal, records, budget)
            assert not self._rerun.running, "a due re-run is started and awaited by _schedule"
            reproducibility = self._rerun.result
        final = []
        for trial in trials:
            record = records.get(trial.trial_id)
            if record is None:
                reason = budget.exhausted_reason or self.watch.stop_reason or "not run"
                record = self._record(trial, reason=reason)
                self._track(journal, record)
            final.append(record)
        return {
            **self.header,
            "trials": final,
            "reproducibility": reproducibility,
            "budget": budget.summary(request.planned_trial_count),
            "tracking": self._tracking_summary(),
            "created_at": utc_now(),
        }

    def _schedule(
        self,
        journal: Journal,
        pending: list[Trial],
        records: dict[str, dict[str, Any]],
        budget: TrialBudget,
    ) -> None:
        executor = self._executor()
        running: dict[futures.Future[Started | None], tuple[Trial, str]] = {}
        queue = list(pending)
        held: list[dict[str, Any]] = []  # finished while the data check was still out
        unsynced: list[dict[str, Any]] = []  # journaled, waiting for the next group commit
        commit_at = 0.0  # when `unsynced` is made durable and published at the latest
        try:
            # `held` finished while the data check was out: the loop waits for its answer.
            while queue or running or held or unsynced or self._rerun_outstanding(records):
                self._data_check_pending(journal)  # a failed check stops the run here
                batch: list[dict[str, Any]] = []
                # The re-run's original may be held or unsynced: a slow data check must
                # not push the re-run behind the whole plan. It, like the plan's trials,
                # is only started before the check answers, never published.
                finished = ChainMap(records, {r["trial_id"]: r for r in [*held, *unsynced]})
                self._start_rerun_when_due(journal, finished, budget)
                self._fill(executor, queue, running, journal, budget, batch)
                waited = self._waited(running)
                if waited:
                    pause = self._round_pause(executor, running, commit_at if unsynced else None)
                    if pause:
                        time.sleep(pause)
                    timeout = max(0.0, commit_at - time.monotonic()) if unsynced else None
                    done, _ = futures.wait(
                        waited, timeout=timeout, return_when=futures.FIRST_COMPLETED
                    )
                    for future in done:
                        if self._rerun is not None and future is self._rerun.future:
                            self._finish_rerun(journal, finished, budget)
                            continue
                        if future not in running:
                            continue  # the data check answered
                        trial, fingerprint = running.pop(future)
                        started = future.result()
                        if started is None:  # the wall budget ran out while it queued
                            budget.give_back()
                            queue.clear()
                            continue
                        self._note_duration(started.outcome.duration_seconds)
                        record = self._from_outcome(trial, started.outcome, fingerprint, started.at)
                        record.update(started.record)
                        self._note_interrupted(record)
                        self._journal_finished(journal, record)
                        batch.append(record)
                    # Workers get their next trial before we wait on the disk.
                    self._fill(executor, queue, running, journal, budget, batch)
                self._watch(batch, running, queue, budget)
                if self._data_check_pending(journal):
                    held += batch  # nobody hears of a trial before the data check passed
                    continue
                if (held or batch) and not unsynced:
                    commit_at = time.monotonic() + GROUP_COMMIT_SECONDS
                unsynced += [*held, *batch]
                held = []
                # Nothing left running: no other trial could share the fsync, so no wait.
                if unsynced and (not running or time.monotonic() >= commit_at):
                    self._publish(journal, unsynced, records)
                    unsynced = []
            if self._data_check is not None:  # nothing was left to run
                self._wait_for_data_check()
                self._publish_run(journal)
        except BaseException:
            for future in running:
                future.cancel()
            if self._rerun is not None and self._rerun.future is not None:
                self._rerun.future.cancel()
            executor.abort()
            raise

    def _note_duration(self, seconds: float) -> None:
        typical = self._typical_seconds
        self._typical_seconds = seconds if typical is None else 0.8 * typical + 0.2 * seconds

    def _round_pause(
        self,
        executor: Executor,
        running: Mapping[futures.Future[Started | None], tuple[Trial, str]],
        commit_at: float | None,
    ) -> float:
        """The pause before waiting for the next round: on the local pool only."""
        if not isinstance(executor, LocalExecutor):
            return 0.0
        return round_pause(
            self._typical_seconds,
            queued=len(running) - executor.workers,
            workers=executor.workers,
            commit_in=None if commit_at is None else commit_at - time.monotonic(),
        )

    def _waited(
        self, running: Mapping[futures.Future[Started | None], tuple[Trial, str]]
    ) -> set[futures.Future[Any]]:
        """What the scheduler waits on: trials, the re-run, the data check's answer."""
        waited: set[futures.Future[Any]] = set(running)
        if self._rerun is not None and self._rerun.future is not None and self._rerun.running:
            waited.add(self._rerun.future)
        if self._data_check is not None:
            waited.add(self._data_check)
        return waited

    def _watch(
        self,
        batch: list[dict[str, Any]],
        running: dict[futures.Future[Started | None], tuple[Trial, str]],
        queue: list[Trial],
        budget: TrialBudget,
    ) -> None:
        """Stop early when the first trial of every arm failed alike (even while held)."""
        for record in batch:
            if self.watch.observe(record):
                queue.clear()
                self._cancel_queued(running, budget)
                # Trials already running finish (and are reported) after this line.
                busy = len(running)
                after = f"; the {busy} trial(s) already running finish first" if busy else ""
                self.request.progress.note(f"{self.watch.stop_reason}{after}")

    def _publish(
        self, journal: Journal, batch: list[dict[str, Any]], records: dict[str, dict[str, Any]]
    ) -> None:
        # Group commit: one fsync makes the whole batch durable, and nobody
        # (cache, tracking, progress) hears of a trial before that.
        journal.sync()
        for record in batch:
            records[record["trial_id"]] = record
            self._after_finish(journal, record)

    def _executor(self) -> Executor:
        assert self.executor is not None, "the executor is opened by run()"
        return self.executor

    def _fill(
        self,
        executor: Executor,
        queue: list[Trial],
        running: dict[futures.Future[Started | None], tuple[Trial, str]],
        journal: Journal,
        budget: TrialBudget,
        batch: list[dict[str, Any]],
    ) -> None:
        taken = 1 if self._rerun is not None and self._rerun.running else 0
        while queue and len(running) + taken < executor.slots:
            trial = queue[0]
            fingerprint = self._fingerprint(trial)
            entry = self.cache.get(fingerprint) if self.cache else None
            if entry is not None:
                queue.pop(0)
                record = self._from_cache(trial, entry, fingerprint)
                self._journal_finished(journal, record)
                batch.append(record)
                continue
            if not budget.may_start():
                queue.clear()
                return
            queue.pop(0)
            budget.take()
            spec = self._spec(trial, self._trial_dir(trial))
            future = executor.submit(
                spec,
                budget,
                _JournalAttempts(self, journal, trial.trial_id),
                self._preparer(trial),
            )
            running[future] = (trial, fingerprint)

    def _preparer(self, trial: Trial) -> Callable[[TrialSpec], TrialSpec] | None:
        """What a worker does just before the trial starts: open the run it logs into
        (metric source mlflow), so a trial cancelled while queued leaves no open run."""
        if not self._metric_source.in_trial_run:
            return None
        return lambda spec: self._logging_into_run(spec, trial)

    @staticmethod
    def _cancel_queued(
        running: dict[futures.Future[Started | None], tuple[Trial, str]], budget: TrialBudget
    ) -> None:
        """Take back trials queued behind a busy worker; those already running finish."""
        for future in list(running):
            if future.cancel():
                running.pop(future)
                budget.give_back()

    def _note_interrupted(self, record: dict[str, Any]) -> None:
        """An executor that logs attempts also shows the one a killed earlier session lost."""
        event = self._interrupted.get(record["trial_id"])
        if event is None or "attempt_log" not in record:
            return
        where: dict[str, Any] = {
            k: event[k] for k in ("ray_job_id", "ray_task_id", "node_id") if k in event
        }
        lost: dict[str, Any] = {
            "attempt": event.get("attempt"),
            **where,
            "outcome": "lost",
            "reason": "the run stopped before the attempt ended; run again on --resume",
        }
        record["attempt_log"] = [lost, *record["attempt_log"]]

    def _journal_finished(self, journal: Journal, record: dict[str, Any]) -> None:
        journal.append(
            {"event": "finished", "trial": record, "monotonic_wall": self._stamp()},
            durable=False,
        )

    def _after_finish(self, journal: Journal, record: dict[str, Any]) -> None:
        if self.cache and record["status"] == "succeeded" and not record.get("cached_from"):
            self.cache.put(
                str(record["fingerprint"]),
                {
                    "trial_id": record["trial_id"],
                    "out_dir": str(self.out_dir),
                    "metrics": record["metrics"],
                    "duration_seconds": record["duration_seconds"],
                    "exit_code": record["exit_code"],
                    "finished_at": record["finished_at"],
                },
            )
        self._track(journal, record)
        self.request.progress.advance(record)

    def _track(self, journal: Journal, record: dict[str, Any], *, catch_up: bool = False) -> None:
        if self.logger is None:
            return
        trial_dir = self.out_dir / str(record["trial_dir"]) if record.get("trial_dir") else None
        run_id = self.logger.log_trial(
            record, trial_dir if trial_dir and trial_dir.is_dir() else None
        )
        record["mlflow_run_id"] = run_id
        if record["status"] != "not_run":
            journal.append(
                {
                    "event": "tracked",
                    "trial_id": record["trial_id"],
                    "mlflow_run_id": run_id,
                    "monotonic_wall": self._stamp(),
                },
                durable=False,  # logging again is idempotent: no need to wait on the disk
            )

    def _tracking_summary(self) -> dict[str, Any] | None:
        if self.logger is None or self.request.tracking_uri is None:
            return None
        summary = getattr(self.logger, "summary", None)
        data: dict[str, Any] = {"uri": self.request.tracking_uri}
        for key in ("experiment_id", "parent_run_id"):
            value = getattr(summary, key, None)
            if value:
                data[key] = str(value)
        return data

    # -- determinism ------------------------------------------------------------------
    # The re-run joins the pool as soon as its original has succeeded, so it runs beside
    # the plan's trials instead of alone after them (a worker would idle for its length).
    def _rerun_outstanding(self, records: Mapping[str, Mapping[str, Any]]) -> bool:
        """The re-run is due (its original is published) or still running."""
        rerun = self._rerun
        return (
            rerun is not None
            and rerun.result is None
            and (rerun.future is not None or rerun.target.trial_id in records)
        )

    def _start_rerun_when_due(
        self, journal: Journal, records: Mapping[str, Mapping[str, Any]], budget: TrialBudget
    ) -> None:
        rerun = self._rerun
        if (
            rerun is not None
            and rerun.future is None
            and rerun.result is None
            and rerun.target.trial_id in records
        ):
            self._start_rerun(journal, records, budget)

    def _start_rerun(
        self, journal: Journal, records: Mapping[str, Mapping[str, Any]], budget: TrialBudget
    ) -> None:
        """Submit the re-run, or record why it cannot happen."""
        rerun = self._rerun
        assert rerun is not None
        target = rerun.target
        original = records.get(target.trial_id)
        if original is None or original["status"] != "succeeded":
            reason = f"the original trial {target.trial_id} did not succeed"
            self._rerun_ended(journal, not_rerun(rerun.rule, target.arm, target.seed, reason))
            return
        if not budget.may_start():
            reason = f"not re-run: {budget.exhausted_reason}"
            self._rerun_ended(journal, not_rerun(rerun.rule, target.arm, target.seed, reason))
            return
        budget.take()
        spec = self._spec(target, self._trial_dir(target, RERUN_DIR))
        self.request.progress.note(f"determinism check: re-running {target.trial_id}")

        def prepare(spec: TrialSpec) -> TrialSpec:
            spec = self._logging_into_run(spec, target, rerun=True)
            rerun.trial_run = spec.trial_run.run_id if spec.trial_run is not None else None
            return spec

        # Its attempts are not journaled, as before: a resume re-runs it from scratch.
        rerun.future = self._executor().submit(spec, budget, NoAttemptLog(), prepare)

    def _finish_rerun(
        self, journal: Journal, records: Mapping[str, Mapping[str, Any]], budget: TrialBudget
    ) -> None:
        rerun = self._rerun
        assert rerun is not None
        assert rerun.future is not None
        target = rerun.target
        started = rerun.future.result()
        if started is None:  # the wall budget ran out while it queued
            budget.give_back()
            reason = f"not re-run: {budget.exhausted_reason}"
            self._rerun_ended(journal, not_rerun(rerun.rule, target.arm, target.seed, reason))
            return
        outcome = started.outcome
        if rerun.trial_run is not None and self.logger is not None:
            self.logger.end_trial_run(rerun.trial_run, outcome.status)
        original = records[target.trial_id]["metrics"]
        self._rerun_ended(
            journal, rerun_result(rerun.rule, target.arm, target.seed, original, outcome)
        )

    def _rerun_ended(self, journal: Journal, result: dict[str, Any]) -> None:
        assert self._rerun is not None
        self._rerun.result = result
        journal.append(
            {"event": "reproducibility", "result": result, "monotonic_wall": self._stamp()}
        )


@dataclass
class _Rerun:
    """The determinism re-run of one plan trial: submitted once its original succeeded."""

    target: Trial
    rule: ReproducibilityRule
    future: futures.Future[Started | None] | None = None
    trial_run: str | None = None  # metric source mlflow: the run it logs into
    result: dict[str, Any] | None = None

    @property
    def running(self) -> bool:
        return self.future is not None and self.result is None


def round_pause(
    typical: float | None, *, queued: int, workers: int, commit_in: float | None
) -> float:
    """Seconds the scheduler pauses between two rounds (ROUND_PAUSE_SECONDS at most).

    No pause before a trial's duration is known, and never longer than half the time the
    `queued` trials keep `workers` busy, so no worker waits for the next round; a group
    commit due in `commit_in` seconds is not put off either.
    """
    if typical is None or queued <= 0:
        return 0.0
    pause = min(ROUND_PAUSE_SECONDS, typical * queued / workers / 2)
    if commit_in is not None:
        pause = min(pause, commit_in)
    return max(0.0, pause)


def run_protocol(request: RunRequest) -> RunOutcome:
    """Run (or resume) the plan as requested and write `<out>/results.json`."""
    return Runner(request).run()


class _JournalAttempts:
    """A trial's AttemptLog: each attempt an executor reports becomes a journal event."""

    def __init__(self, runner: Runner, journal: Journal, trial_id: str) -> None:
        self.runner, self.journal, self.trial_id = runner, journal, trial_id

    def submitted(self, attempt: int, token: str, where: Mapping[str, Any]) -> None:
        # Not durable: a killed driver's writes still reach the file; a lost machine
        # takes the trial with it.
        self.journal.append(
            {
                "event": "submitted",
                "trial_id": self.trial_id,
                "attempt": attempt,
                "submission": token,
                **where,
                "monotonic_wall": self.runner._stamp(),
            },
            durable=False,
        )

    def started(self, start: AttemptStart) -> None:
        self.journal.append(
            {
                "event": "started",
                "trial_id": self.trial_id,
                "attempt": start.attempt,
                "pid": start.pid,
                "pid_start": start.pid_start,
                **start.where,
                "monotonic_wall": self.runner._stamp(),
            },
            durable=False,
        )

    def lost(self, attempt: int, reason: str, where: Mapping[str, Any]) -> None:
        self.journal.append(
            {
                "event": "attempt_lost",
                "trial_id": self.trial_id,
                "attempt": attempt,
                "reason": reason,
                **where,
                "monotonic_wall": self.runner._stamp(),
            }
        )
