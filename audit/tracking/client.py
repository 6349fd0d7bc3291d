"""Log a protocol execution to MLflow: one parent run, one child run per trial, exactly once.

Each run is found by its idempotency key (a tag set atomically at creation) before it
is created, so a retry, a replay from the spool or a second `track log` of the same
results never creates a duplicate; loggers that race (shards of one execution, all
opening its parent run at once) are kept to one run by the store, which refuses a
second run with the same key, and the loser logs to the winner's run. A shard never
ends the parent run: `track log` of the merged results does. A run a crashed logger
left RUNNING is finished with the same (deterministic) content, never recreated. A
trial costs a handful of requests: create, artifact uploads, one `log_batch` per
MLflow batch limit, end. Transient failures are retried with bounded backoff; when the
server stays down the records go to the spool (audit/tracking/spool.py) for
`mlaudit track flush`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from audit.errors import TrackingError
from audit.tracking.record import (
    ARTIFACT_MANIFEST_PATH,
    ARTIFACTS_SHA256_TAG,
    TERMINAL_STATUSES,
)
from audit.tracking.retry import RetryPolicy, ServerUnavailable, call_with_retry
from audit.tracking.runspec import (
    EXECUTION_KEY_TAG,
    PARENT_RUN_TAG,
    ROLE_TAG,
    TRIAL_KEY_TAG,
    TRIAL_STATUS_TAG,
    RunSpec,
    canonical_json,
    execution_key,
    in_trial_run,
    parent_run,
    trial_run,
)

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

    from audit.tracking.ledger import RestRun
    from audit.tracking.rest_tracking import RestTracking
    from audit.tracking.spool import Spool

    Client: TypeAlias = MlflowClient | RestTracking
    AnyRun: TypeAlias = Run | RestRun

# MLflow's per-request limits for log_batch (mlflow.utils.validation).
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
SEARCH_PAGE = 1000
# Trials logged side by side by `track log`: the server's SQLite writes are serialised
# anyway, but request handling, network and sealing overlap.
TRIAL_WORKERS = 4


def _client_environment() -> None:
    # MLflow reads these per request; its defaults (7 retries, 120 s timeout) would keep
    # a logger hanging for minutes before the spool could take over.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Checking an uploaded artifact downloads it; a tqdm bar per file would bury the
    # trial lines of `ablate run` and the CI log in carriage returns.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def connect(uri: str) -> MlflowClient:
    """An MlflowClient whose own retries are off: ours are bounded and classify errors."""
    _client_environment()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def connect_writer(uri: str) -> Client:
    """The client a RunWriter logs with: REST JSON where MLflow's settings are not needed
    (audit.tracking.rest_tracking), else MLflow's own."""
    from audit.tracking.rest import plain_rest

    if plain_rest(uri):
        from audit.tracking.rest_tracking import RestTracking

        return RestTracking(uri)
    return connect(uri)


def preload_client(uri: str) -> None:
    """Import the client `connect_writer` will use in a background thread (MLflow's: ~1 s).

    `ablate run --tracking-uri` starts this before its checks: the first trial to log
    then finds it imported instead of holding the run's scheduling loop for the import.
    """
    from audit._preload import preload
    from audit.tracking.rest import plain_rest

    _client_environment()
    preload("requests", "audit.tracking.rest_tracking" if plain_rest(uri) else "mlflow.tracking")


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def search_all(client: Client, experiment_id: str, filter_string: str) -> Iterator[AnyRun]:
    """Every run matching the filter, all lifecycle stages, page by page."""
    view_all: Any = "ALL"
    if not _is_rest(client):
        from mlflow.entities import ViewType

        view_all = ViewType.ALL
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            run_view_type=view_all,
            max_results=SEARCH_PAGE,
            page_token=token,
        )
        yield from page
        token = page.token
        if not token:
            return


def _is_rest(client: Client) -> bool:
    from audit.tracking.rest import RestClient

    return isinstance(client, RestClient)


def ensure_experiment(client: Client, name: str, policy: RetryPolicy) -> str:
    from audit.tracking.rest_tracking import error_code

    def find_or_create() -> str:
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name))
        except Exception as error:
            if error_code(error) != "RESOURCE_ALREADY_EXISTS":
                raise
            # Another logger created it between our lookup and our create.
            again = client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    return call_with_retry(find_or_create, policy, describe=f"experiment {name!r}")


@dataclass
class WriteOutcome:
    run_id: str
    state: str  # "created", "resumed" (a RUNNING leftover finished) or "existing"
    conflict: str | None = None
    artifact_uri: str = ""


def _batches(
    spec: RunSpec, extra_tags: Mapping[str, str], client: Client
) -> Iterator[tuple[list[Any], ...]]:
    """Split params, metrics and tags into log_batch calls within MLflow's limits."""
    params: list[Any]
    metrics: list[Any]
    if _is_rest(client):
        from audit.tracking.ledger import RestTag

        # The spec's own points and (key, value) pairs are what the JSON body needs.
        params = [RestTag(k, v) for k, v in sorted(spec.params.items())]
        metrics = list(spec.metrics)
    else:
        from mlflow.entities import Metric, Param

        params = [Param(k, v) for k, v in sorted(spec.params.items())]
        metrics = [Metric(m.key, m.value, m.timestamp, m.step) for m in spec.metrics]
    tags = _tags(client, extra_tags)
    while params or metrics or tags:
        p, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
        t, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        yield p, m, t


def _tags(client: Client, items: Mapping[str, str]) -> list[Any]:
    """Tags as the client sends them: MLflow's entities, or plain key/value pairs."""
    if _is_rest(client):
        from audit.tracking.ledger import RestTag as RunTag
    else:
        from mlflow.entities import RunTag  # type: ignore[assignment]
    return [RunTag(k, v) for k, v in sorted(items.items())]


class _KeyTaken(TrackingError):
    """The server refused to create a run: one with the same idempotency key exists."""


class RunWriter:
    """Finds or creates, fills and ends runs of one experiment, each exactly once."""

    def __init__(self, client: Client, experiment_id: str, policy: RetryPolicy) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.policy = policy
        self._known: dict[str, AnyRun] = {}
        self._opened: dict[str, str] = {}  # key -> run id of runs this writer has opened
        self._prefetched: set[str] = set()

    def prefetch(self, execution: str) -> None:
        """Index every run of an execution by key: one paged search instead of one per trial."""
        if execution in self._prefetched:
            return
        query = f"tags.`{EXECUTION_KEY_TAG}` = {quote(execution)}"
        runs = call_with_retry(
            lambda: list(search_all(self.client, self.experiment_id, query)),
            self.policy,
            describe="search for logged runs",
        )
        for run in runs:
            tags = run.data.tags
            # A trial's run (or a determinism re-run's) is known by its own key.
            key_tag = TRIAL_KEY_TAG if TRIAL_KEY_TAG in tags else EXECUTION_KEY_TAG
            if key_tag in tags:
                self._known.setdefault(tags[key_tag], run)
        self._prefetched.add(execution)

    def _search(self, spec: RunSpec) -> AnyRun | None:
        query = f"tags.`{spec.key_tag}` = {quote(spec.key)}"
        if spec.key_tag == EXECUTION_KEY_TAG:
            query += f" and tags.`{ROLE_TAG}` = 'execution'"
        runs = list(search_all(self.client, self.experiment_id, query))
        # Oldest first: if a race ever made two, the first one is the record.
        runs.sort(key=lambda r: (r.info.start_time or 0, r.info.run_id))
        return runs[0] if runs else None

    def find(self, spec: RunSpec) -> AnyRun | None:
        if spec.key in self._opened:
            # Opened earlier by this writer (a replayed trial): its current state decides.
            run_id = self._opened[spec.key]
            return call_with_retry(
                lambda: self.client.get_run(run_id), self.policy, describe=spec.label
            )
        if spec.key in self._known:
            return self._known[spec.key]
        execution = spec.tags.get(EXECUTION_KEY_TAG)
        if execution in self._prefetched:
            return None
        return call_with_retry(lambda: self._search(spec), self.policy, describe=spec.label)

    def open(self, spec: RunSpec, parent_run_id: str | None = None) -> WriteOutcome:
        """Find the run of `spec` or create it (RUNNING); never two runs for one key."""
        found = self.find(spec)
        if found is None:
            try:
                run_id, artifact_uri = self._create(spec, parent_run_id)
            except _KeyTaken:
                # Another logger created it since we looked (shards start together).
                found = call_with_retry(
                    lambda: self._search(spec), self.policy, describe=spec.label
                )
                if found is None:
                    raise TrackingError(
                        f"{spec.label}: the server holds a run with key {spec.key} "
                        "but no search finds it"
                    ) from None
            else:
                self._opened[spec.key] = run_id
                return WriteOutcome(run_id, "created", artifact_uri=artifact_uri)
        self._opened[spec.key] = found.info.run_id
        if found.info.status in TERMINAL_STATUSES:
            return WriteOutcome(
                found.info.run_id, "existing", _difference(spec, found), found.info.artifact_uri
            )
        conflict = _difference(spec, found, partial=True)
        if conflict:
            raise TrackingError(
                f"{spec.label}: run {found.info.run_id} was left unfinished with different "
                f"content ({conflict}); refusing to finish or duplicate it"
            )
        return WriteOutcome(found.info.run_id, "resumed", artifact_uri=found.info.artifact_uri)

    def write(self, spec: RunSpec, parent_run_id: str | None = None) -> WriteOutcome:
        outcome = self.open(spec, parent_run_id)
        if outcome.state != "existing":
            self.finish(outcome, spec)
        return outcome

    def _create(self, spec: RunSpec, parent_run_id: str | None) -> tuple[str, str]:
        tags = dict(spec.tags)
        if parent_run_id:
            tags[PARENT_RUN_TAG] = parent_run_id
        attempted = False

        def create() -> tuple[str, str]:
            nonlocal attempted
            if attempted:
                # The previous attempt may have reached the server before failing.
                earlier = self._search(spec)
                if earlier is not None:
                    return str(earlier.info.run_id), str(earlier.info.artifact_uri)
            attempted = True
            from audit.tracking.rest_tracking import error_code, error_message

            try:
                run = self.client.create_run(
                    self.experiment_id, start_time=spec.start_time, tags=tags, run_name=spec.name
                )
            except Exception as error:
                if error_code(error) == "RESOURCE_ALREADY_EXISTS":
                    raise _KeyTaken(error_message(error)) from error  # one run per key
                raise
            return str(run.info.run_id), str(run.info.artifact_uri)

        return call_with_retry(create, self.policy, describe=f"{spec.label}: create run")

    def finish(self, outcome: WriteOutcome, spec: RunSpec) -> None:
        """Upload artifacts and the manifest, log values in batches, end the run (sealing it)."""
        run_id = outcome.run_id
        files = {path: _content(item) for path, item in spec.artifacts.items()}
        manifest = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
        manifest_bytes = canonical_json(manifest)
        files[ARTIFACT_MANIFEST_PATH] = manifest_bytes
        extra = {ARTIFACTS_SHA256_TAG: hashlib.sha256(manifest_bytes).hexdigest()}
        if outcome.state == "resumed":
            # A run opened before its trial ran (metric source mlflow) or left by a
            # crashed logger: the outcome tags are not there yet (a new run gets them
            # when it is created).
            extra = {**spec.tags, **extra}

        def log_values() -> None:
            for params, metrics, tags in _batches(spec, extra, self.client):
                log = functools.partial(
                    self.client.log_batch, run_id, metrics, params, tags, synchronous=True
                )
                call_with_retry(log, self.policy, describe=f"{spec.label}: log values")
            if spec.datasets:
                inputs = functools.partial(_log_inputs, self.client, run_id, spec)
                call_with_retry(inputs, self.policy, describe=f"{spec.label}: log data inputs")

        # Values and files are independent requests: send them side by side. Only the
        # end (which seals the run) must wait for both.
        with ThreadPoolExecutor(max_workers=1) as pool:
            values = pool.submit(log_values)
            self._upload(outcome, files, spec.label)
            values.result()
        self._end(run_id, spec)

    def _end(self, run_id: str, spec: RunSpec) -> None:
        attempted = False

        def end() -> None:
            nonlocal attempted
            if attempted and self.client.get_run(run_id).info.status in TERMINAL_STATUSES:
                return  # the earlier attempt ended (and sealed) it
            attempted = True
            update_run(self.client, run_id, spec.status, spec.end_time)

        call_with_retry(end, self.policy, describe=f"{spec.label}: end run")

    def _upload(self, outcome: WriteOutcome, files: Mapping[str, bytes], label: str) -> None:
        """PUT every artifact (in parallel: each is its own request) through the run's repo.

        Artifacts are write-once on the server, so when finishing a run a crashed logger
        left behind, files already there are compared instead of uploaded again.
        """
        repo = self._artifact_repository(outcome.artifact_uri)
        present = self._present(repo, label) if outcome.state == "resumed" else set()

        def put(item: tuple[str, bytes]) -> None:
            path, data = item
            if path in present:
                self._same_artifact(repo, path, data, label)
                return
            call_with_retry(
                lambda: _put_artifact(repo, path, data),
                self.policy,
                describe=f"{label}: upload {path}",
            )

        items = sorted(files.items())
        if len(items) == 1:  # a trial without artifacts has its manifest only
            put(items[0])
            return
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(put, items))

    def _artifact_repository(self, artifact_uri: str) -> Any:
        """The run's artifact store: through the server's proxy by REST, else MLflow's."""
        from audit.tracking.rest_tracking import RestTracking

        if isinstance(self.client, RestTracking):
            proxied = self.client.artifacts(artifact_uri)
            if proxied is not None:
                return proxied
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        return get_artifact_repository(artifact_uri, tracking_uri=self.client.tracking_uri)

    def _present(self, repo: Any, label: str) -> set[str]:
        def walk(path: str | None) -> list[str]:
            found: list[str] = []
            for info in repo.list_artifacts(path):
                found.extend(walk(info.path) if info.is_dir else [info.path])
            return found

        return set(call_with_retry(lambda: walk(None), self.policy, describe=f"{label}: list"))

    def _same_artifact(self, repo: Any, path: str, data: bytes, label: str) -> None:
        with tempfile.TemporaryDirectory(prefix="mlaudit-artifacts-") as folder:
            local = call_with_retry(
                lambda: repo.download_artifacts(path, folder),
                self.policy,
                describe=f"{label}: download {path}",
            )
            same = Path(local).read_bytes() == data
        if not same:
            raise TrackingError(
                f"{label}: artifact {path} already uploaded with different content; "
                "refusing to finish the run"
            )


def _put_artifact(repo: Any, path: str, data: bytes) -> None:
    """Upload `data` as `path`: straight from memory through the REST proxy, else from a
    temporary file (MLflow's repositories take files)."""
    from audit.tracking.rest_tracking import RestArtifacts

    if isinstance(repo, RestArtifacts):
        repo.log_bytes(data, path)
        return
    directory, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="mlaudit-artifacts-") as folder:
        local = Path(folder) / name
        local.write_bytes(data)
        repo.log_artifact(str(local), directory or None)


# The SQL stores reuse a dataset by (experiment, name, digest), but two runs logging the
# same new dataset at once both insert it; the loser's transaction is rolled back whole.
_DATASET_RACE = ("UNIQUE constraint failed: datasets", "duplicate key value violates unique")


def update_run(client: Client, run_id: str, status: str, end_time: int) -> None:
    """End a run (which seals it) with its status."""
    from audit.tracking.rest_tracking import RestTracking

    if isinstance(client, RestTracking):
        client.update_run(run_id, status, end_time)
        return
    from mlflow.entities import RunStatus

    # The store directly: MlflowClient.set_terminated also fetches the run and prints
    # a "View run" line on stdout, which would corrupt `--json` output.
    store = client._tracking_client.store
    store.update_run_info(run_id, RunStatus.from_string(status), end_time, None)


def _log_inputs(client: Client, run_id: str, spec: RunSpec, attempts: int = 3) -> None:
    from audit.tracking.rest_tracking import error_message

    for attempt in range(1, attempts + 1):
        try:
            client.log_inputs(run_id, datasets=_dataset_inputs(spec, client))
            return
        except Exception as error:
            if attempt == attempts or not any(m in error_message(error) for m in _DATASET_RACE):
                raise


def _dataset_inputs(spec: RunSpec, client: Client) -> list[Any]:
    if _is_rest(client):
        from audit.tracking.ledger import RestDataset as Dataset
        from audit.tracking.ledger import RestDatasetInput as DatasetInput
        from audit.tracking.ledger import RestTag as InputTag
    else:
        from mlflow.entities import Dataset, DatasetInput, InputTag  # type: ignore[assignment]

    return [
        DatasetInput(
            Dataset(d.name, d.digest, d.source_type, d.source),
            [InputTag(k, v) for k, v in sorted(d.tags.items())],
        )
        for d in spec.datasets
    ]


def _content(item: bytes | Path) -> bytes:
    return item if isinstance(item, bytes) else Path(item).read_bytes()


def _difference(spec: RunSpec, run: AnyRun, *, partial: bool = False) -> str | None:
    """First way an existing run differs from what we would log (None: same content).

    With `partial`, values not logged yet are fine (a crashed logger stopped early).
    """
    params = run.data.params
    for key, value in sorted(spec.params.items()):
        if key in params and params[key] != value:
            return f"param {key!r} is {params[key]!r}, expected {value!r}"
        if key not in params and not partial:
            return f"param {key!r} is missing"
    tags = run.data.tags
    for key, value in sorted(spec.tags.items()):
        if key in tags and tags[key] != value:
            return f"tag {key!r} is {tags[key]!r}, expected {value!r}"
    latest: dict[str, tuple[int, int, float]] = {}
    for point in spec.metrics:
        mark = (point.step, point.timestamp, point.value)
        if point.key not in latest or mark[:2] >= latest[point.key][:2]:
            latest[point.key] = mark
    for key, (_, _, final) in sorted(latest.items()):
        logged = run.data.metrics.get(key)
        if logged is None:
            if not partial:
                return f"metric {key!r} is missing"
        elif partial:
            continue  # a partial history's latest point is not the final one
        elif logged != final:
            return f"metric {key!r} is {logged!r}, expected {final!r}"
    return None


def trial_files(trial_dir: Path | None) -> list[tuple[str, Path]]:
    """Every regular file under a trial directory, as (relative posix path, path)."""
    if trial_dir is None or not trial_dir.is_dir():
        return []
    return sorted(
        (p.relative_to(trial_dir).as_posix(), p)
        for p in trial_dir.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


@dataclass
class LogSummary:
    """What one `track log` (or one protocol execution's logger) did."""

    tracking_uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    created: dict[str, str] = field(default_factory=dict)  # trial id -> run id
    existing: dict[str, str] = field(default_factory=dict)
    resumed: dict[str, str] = field(default_factory=dict)
    spooled: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    spool_file: str | None = None

    def run_ids(self) -> dict[str, str]:
        return {**self.existing, **self.resumed, **self.created}

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "parent_run_id": self.parent_run_id,
            "runs": dict(sorted(self.run_ids().items())),
            "created": len(self.created),
            "existing": len(self.existing),
            "resumed": len(self.resumed),
            "spooled": list(self.spooled),
            "not_run": list(self.not_run),
            "conflicts": dict(self.conflicts),
            "spool_file": self.spool_file,
        }


class ProtocolLogger:
    """Logs trials as they finish; falls back to the spool when the server stays down.

    `header` is results.json without `trials`. With `spool_dir=None` an outage raises
    TrackingError instead (what `track flush` wants while replaying the spool).
    """

    def __init__(
        self,
        uri: str,
        header: Mapping[str, Any],
        spool_dir: Path | None,
        *,
        experiment: str | None = None,
        policy: RetryPolicy | None = None,
        retry_live_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self.header = {k: v for k, v in header.items() if k != "trials"}
        self.experiment = experiment or str((self.header.get("edd") or {}).get("id") or "mlaudit")
        self.policy = policy or RetryPolicy()
        self.spool_dir = spool_dir
        self.summary = LogSummary(tracking_uri=uri)
        self._writer: RunWriter | None = None
        self._spooling = False
        self._spooling_since = 0.0
        # A protocol may run for hours: after an outage, try the server again now and
        # then instead of spooling everything that follows.
        self.retry_live_after = retry_live_after
        self._clock = clock
        self._lock = threading.Lock()  # one parent run, even when trials log in threads
        self._parent: WriteOutcome | None = None

    # -- the live path --------------------------------------------------------------
    def _live(self) -> RunWriter:
        if self._writer is None:
            client = connect_writer(self.uri)
            experiment_id = ensure_experiment(client, self.experiment, self.policy)
            writer = RunWriter(client, experiment_id, self.policy)
            writer.prefetch(execution_key(self.header))
            self._writer = writer
            self.summary.experiment_id = experiment_id
        return self._writer

    def _parent_run(self, first_trials: Sequence[Mapping[str, Any]] = ()) -> WriteOutcome:
        with self._lock:
            if self._parent is None:
                writer = self._live()
                self._parent = writer.open(parent_run(self.header, first_trials=first_trials))
                self.summary.parent_run_id = self._parent.run_id
            return self._parent

    def _go_live(self) -> bool:
        """Whether to try the server: always, unless spooling began only a moment ago."""
        if self._spooling and self._clock() - self._spooling_since >= self.retry_live_after:
            self._spooling = False
        return not self._spooling

    def log_trial(self, trial: Mapping[str, Any], trial_dir: Path | None = None) -> str | None:
        """Log one finished trial; returns its run id, or None when spooled or not run."""
        files = trial_files(trial_dir)
        spec = trial_run(self.header, trial, files)
        trial_id = str(trial.get("trial_id") or f"{trial.get('arm')}/{trial.get('seed')}")
        if spec is None:
            self.summary.not_run.append(trial_id)
            return None
        if self._go_live():
            try:
                parent = self._parent_run([trial])
                outcome = self._live().write(spec, parent.run_id)
            except ServerUnavailable as error:
                self._start_spooling(error)
            else:
                getattr(self.summary, outcome.state)[trial_id] = outcome.run_id
                if outcome.conflict:
                    self.summary.conflicts[trial_id] = outcome.conflict
                return outcome.run_id
        self._spool().append_trial(self.uri, self.experiment, self.header, trial, files)
        self.summary.spooled.append(trial_id)
        return None

    def open_trial_run(self, arm: str, seed: int, *, rerun: bool = False) -> str:
        """The run a trial logs into itself (metric source mlflow), open before it starts.

        Found by the trial's key, so a resumed or retried trial logs into the same run.
        The server must be up: such a trial has no spool to fall back on.
        """
        spec = in_trial_run(self.header, arm, seed, round(time.time() * 1000), rerun=rerun)
        try:
            parent = self._parent_run()
            outcome = self._live().open(spec, parent.run_id)
        except ServerUnavailable as error:
            raise TrackingError(
                f"{spec.label} logs into its own MLflow run, but the tracking server "
                f"{self.uri} is unavailable: {error}"
            ) from error
        if outcome.state == "existing":
            raise TrackingError(
                f"{spec.label}: its MLflow run {outcome.run_id} is already sealed (an earlier "
                "execution of this very plan logged it); run the study against a fresh "
                "experiment to log it again"
            )
        return outcome.run_id

    def end_trial_run(self, run_id: str, status: str) -> None:
        """End (and so seal) a determinism re-run's own run with its status."""
        writer = self._live()
        run_status = {"succeeded": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")

        def end() -> None:
            if writer.client.get_run(run_id).info.status != "RUNNING":
                return  # an earlier attempt ended (and sealed) it
            writer.client.log_batch(run_id, tags=_tags(writer.client, {TRIAL_STATUS_TAG: status}))
            update_run(writer.client, run_id, run_status, round(time.time() * 1000))

        call_with_retry(end, self.policy, describe=f"end re-run {run_id}")

    def log_trials(
        self,
        trials: Iterable[tuple[Mapping[str, Any], Path | None]],
        workers: int = TRIAL_WORKERS,
    ) -> list[str | None]:
        """Log many finished trials, a few at a time (each trial is its own run)."""
        items = list(trials)
        if self._go_live():
            try:
                self._parent_run([trial for trial, _ in items])  # once, before the threads
            except ServerUnavailable as error:
                self._start_spooling(error)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda item: self.log_trial(*item), items))

    def close(
        self,
        results: Mapping[str, Any] | None = None,
        analysis: Mapping[str, Any] | None = None,
        extra_files: Mapping[str, Path] | None = None,
    ) -> LogSummary:
        """End the parent run with the evidence artifacts (results, analysis, EDD...)."""
        if self._go_live():
            try:
                parent = self._parent_run(list((results or {}).get("trials") or []))
                # A shard holds part of the results: the parent run is ended (sealed)
                # with all of them, by `track log` of what `ablate collect` merged.
                shard = (self.header.get("plan") or {}).get("shard")
                if parent.state != "existing" and not shard:
                    spec = parent_run(self.header, results, analysis, extra_files)
                    self._live().finish(parent, spec)
            except ServerUnavailable as error:
                self._start_spooling(error)
        # Trials spooled during an earlier outage need the close record too: it lets
        # `track flush` retire the spool file once they are in.
        if self._spooling or self.summary.spooled:
            spool = self._spool()
            spool.append_close(
                self.uri, self.experiment, self.header, results, analysis, extra_files
            )
            self.summary.spool_file = str(spool.file_for(self.header))
        return self.summary

    # -- the spool path -------------------------------------------------------------
    def _spool(self) -> Spool:
        from audit.tracking.spool import Spool

        assert self.spool_dir is not None
        return Spool(self.spool_dir)

    def _start_spooling(self, error: ServerUnavailable) -> None:
        if self.spool_dir is None:
            raise TrackingError(f"tracking server {self.uri} is unavailable: {error}") from error
        self._spooling = True
        self._spooling_since = self._clock()


def log_results(
    results: Mapping[str, Any],
    uri: str,
    *,
    spool_dir: Path,
    analysis: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, Path] | None = None,
    trials_dir: Path | None = None,
    base_dir: Path | None = None,
    experiment: str | None = None,
    policy: RetryPolicy | None = None,
) -> LogSummary:
    """`mlaudit track log`: every trial of a results document, then the parent's evidence.

    Each trial's files (its recorded `trial_dir` under `base_dir`, the folder of
    results.json, or else `trials_dir/<trial_id>`) are uploaded as its artifacts.
    """
    logger = ProtocolLogger(uri, results, spool_dir, experiment=experiment, policy=policy)
    logger.log_trials(
        (trial, _trial_dir(trial, trials_dir, base_dir)) for trial in _trials(results)
    )
    return logger.close(results, analysis, artifacts)


def _trial_dir(
    trial: Mapping[str, Any], trials_dir: Path | None, base_dir: Path | None
) -> Path | None:
    """Where a trial's files are: its recorded `trial_dir` (relative to results.json's
    folder), else `trials_dir/<trial_id>`."""
    recorded = trial.get("trial_dir")
    if recorded and base_dir is not None and (base_dir / str(recorded)).is_dir():
        return base_dir / str(recorded)
    if trials_dir is not None:
        return trials_dir / str(trial.get("trial_id"))
    return None


def _trials(results: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    trials = results.get("trials") or []
    return [t for t in trials if isinstance(t, Mapping)]
