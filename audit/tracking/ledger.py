"""The seal ledger of an experiment, fetched from the REST API: leaves and recomputed records.

Everything is refetched through the tracking server's public API (the same view an
auditor has): runs page by page, metric histories in bulk (100 runs per request).
Each sealed run's canonical record is recomputed with audit.tracking.record; the
seals in sequence order are the Merkle leaves (leaf data = the 32-byte seal digest).
Proofs over the ledger live in audit.tracking.proofs, its verification in
audit.tracking.ledger_verify; this module only fetches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit.errors import TrackingError, UsageError
from audit.tracking import record as run_record
from audit.tracking.checkpoint import origin_of
from audit.tracking.merkle import MerkleTree
from audit.tracking.rest import RestClient, mlflow_client
from audit.tracking.retry import RetryPolicy, call_with_retry

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

HISTORY_RUNS_PER_REQUEST = 100  # MLflow's limit for get-history-bulk
HISTORY_MAX_RESULTS = 25000  # and its cap on points per answer
HISTORY_ENDPOINT = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
# One page of runs = one history request per metric key (the bulk limit is 100 runs).
SEARCH_PAGE = HISTORY_RUNS_PER_REQUEST
PAGE_WORKERS = 6


@dataclass(frozen=True)
class Leaf:
    seq: int
    run_id: str
    sha256: str  # the seal as the server published it (tag mlaudit.seal.sha256)


@dataclass
class Ledger:
    """Sealed runs of one experiment in sequence order, with their recomputed records."""

    tracking_uri: str
    experiment_id: str
    leaves: list[Leaf]
    records: dict[str, bytes]  # run id -> canonical record recomputed from REST data
    runs: list[Run | RestRun] = field(default_factory=list, repr=False)
    histories: dict[str, dict[str, list[tuple[int, int, float]]]] = field(
        default_factory=dict, repr=False
    )
    _tree: MerkleTree | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return origin_of(self.tracking_uri, self.experiment_id)

    @property
    def tree(self) -> MerkleTree:
        if self._tree is None:
            self._tree = MerkleTree.build([bytes.fromhex(leaf.sha256) for leaf in self.leaves])
        return self._tree

    @property
    def size(self) -> int:
        return len(self.leaves)

    @property
    def root(self) -> str:
        return self.tree.root.hex()


# -- fetching ----------------------------------------------------------------------


def resolve_experiment(client: MlflowClient | RestClient, experiment: str | None) -> str:
    """An experiment id from a name or id; without one, the only experiment with runs."""
    from audit.tracking.retry import RetryPolicy, call_with_retry

    return call_with_retry(
        lambda: _resolve_experiment(client, experiment), RetryPolicy(), describe="find experiment"
    )


def _resolve_experiment(client: MlflowClient | RestClient, experiment: str | None) -> str:
    if isinstance(client, RestClient):
        return _resolve_experiment_rest(client, experiment)
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.get_experiment(experiment).experiment_id)
        except MlflowException:
            raise UsageError(f"no experiment named or numbered {experiment!r}") from None
    candidates = [
        e
        for e in client.search_experiments(view_type=ViewType.ALL)
        if client.search_runs([e.experiment_id], max_results=1, run_view_type=ViewType.ALL)
    ]
    if len(candidates) != 1:
        names = ", ".join(f"{e.name} ({e.experiment_id})" for e in candidates) or "none"
        raise UsageError(f"pass --experiment: experiments with runs: {names}")
    return str(candidates[0].experiment_id)


def _resolve_experiment_rest(client: RestClient, experiment: str | None) -> str:
    """`_resolve_experiment` through the REST JSON API (same endpoints MlflowClient calls)."""
    import requests

    if experiment:
        for endpoint, params in (
            ("/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": experiment}),
            ("/api/2.0/mlflow/experiments/get", {"experiment_id": experiment}),
        ):
            try:
                found = client.call(endpoint, params=params).get("experiment") or {}
            except requests.HTTPError as error:
                if error.response is None or error.response.status_code >= 500:
                    raise
                continue  # not found under this name or id (MLflow answers 4xx)
            if found.get("experiment_id"):
                return str(found["experiment_id"])
        raise UsageError(f"no experiment named or numbered {experiment!r}")
    experiments = (
        client.call(
            "/api/2.0/mlflow/experiments/search",
            "POST",
            json={"max_results": 1000, "view_type": "ALL"},
        ).get("experiments")
        or []
    )
    candidates = [
        e
        for e in experiments
        if client.call(
            SEARCH_ENDPOINT,
            "POST",
            json={
                "experiment_ids": [e["experiment_id"]],
                "max_results": 1,
                "run_view_type": "ALL",
            },
        ).get("runs")
    ]
    if len(candidates) != 1:
        names = ", ".join(f"{e['name']} ({e['experiment_id']})" for e in candidates) or "none"
        raise UsageError(f"pass --experiment: experiments with runs: {names}")
    return str(candidates[0]["experiment_id"])


Call = Callable[..., dict[str, Any]]


def _caller(client: MlflowClient | RestClient, policy: RetryPolicy | None = None) -> Call:
    """`call(endpoint, method, params=..., json=...) -> JSON`: REST, or MLflow's http_request.

    With a policy, each request is retried on its own: a fetch of a large ledger takes
    minutes, so a budget over the whole fetch would turn its first transient error (a
    keep-alive connection the server reset) into a failure once the budget had passed.
    """
    call = _plain_caller(client)
    if policy is None:
        return call

    def retried(endpoint: str, method: str = "GET", **kwargs: Any) -> dict[str, Any]:
        return call_with_retry(
            lambda: call(endpoint, method, **kwargs), policy, describe=f"{method} {endpoint}"
        )

    return retried


def _plain_caller(client: MlflowClient | RestClient) -> Call:
    if isinstance(client, RestClient):
        return client.call
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    host_creds = client._tracking_client.store.get_host_creds()

    def call(endpoint: str, method: str = "GET", **kwargs: Any) -> dict[str, Any]:
        response = http_request(host_creds, endpoint, method, **kwargs)  # type: ignore[no-untyped-call]
        verify_rest_response(response, endpoint)
        answer: dict[str, Any] = json.loads(response.text)
        return answer

    return call


def fetch_histories(
    client: MlflowClient | RestClient,
    runs: Sequence[Run | RestRun],
    workers: int = 8,
    policy: RetryPolicy | None = None,
) -> dict[str, dict[str, list[tuple[int, int, float]]]]:
    """Full metric histories of many runs: one bulk request per metric key and 100 runs."""
    by_key: dict[str, list[str]] = {}
    for run in runs:
        for key in run.data.metrics:
            by_key.setdefault(key, []).append(run.info.run_id)
    jobs = [
        (key, run_ids[i : i + HISTORY_RUNS_PER_REQUEST])
        for key, run_ids in sorted(by_key.items())
        for i in range(0, len(run_ids), HISTORY_RUNS_PER_REQUEST)
    ]
    histories: dict[str, dict[str, list[tuple[int, int, float]]]] = {}
    call = _caller(client, policy)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for points in pool.map(lambda job: _bulk_history(call, *job), jobs):
            for run_id, key, point in points:
                histories.setdefault(run_id, {}).setdefault(key, []).append(point)
    return histories


def _bulk_history(
    call: Call, key: str, run_ids: list[str]
) -> list[tuple[str, str, tuple[int, int, float]]]:
    answer = call(
        HISTORY_ENDPOINT,
        "GET",
        params={"run_id": run_ids, "metric_key": key, "max_results": HISTORY_MAX_RESULTS},
    )
    metrics = answer.get("metrics", [])
    if len(metrics) >= HISTORY_MAX_RESULTS:
        if len(run_ids) == 1:
            raise TrackingError(
                f"run {run_ids[0]}: metric {key!r} has more than {HISTORY_MAX_RESULTS} points"
            )
        # The answer was capped: ask again with half the runs each, until nothing is cut.
        half = len(run_ids) // 2
        return _bulk_history(call, key, run_ids[:half]) + _bulk_history(call, key, run_ids[half:])
    return [
        (m["run_id"], key, (int(m.get("step", 0)), int(m.get("timestamp", 0)), _value(m)))
        for m in metrics
    ]


def _value(metric: Mapping[str, Any]) -> float:
    value = metric.get("value", 0.0)
    return float(value) if value is not None else float("nan")


@dataclass(frozen=True)
class RestRunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RestRunData:
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class RestTag:
    key: str
    value: str


@dataclass(frozen=True)
class RestDataset:
    name: str
    digest: str
    source_type: str
    source: str


@dataclass(frozen=True)
class RestDatasetInput:
    dataset: RestDataset
    tags: list[RestTag]


@dataclass(frozen=True)
class RestRunInputs:
    dataset_inputs: list[RestDatasetInput]


@dataclass(frozen=True)
class RestRun:
    """A run exactly as the REST API's JSON states it, with the attributes of
    `mlflow.entities.Run` that a record needs (the protobuf round trip of MlflowClient
    costs more than everything else verify does)."""

    info: RestRunInfo
    data: RestRunData
    inputs: RestRunInputs

    @classmethod
    def from_json(cls, run: Mapping[str, Any]) -> RestRun:
        info, data = run.get("info") or {}, run.get("data") or {}
        end_time = int(info.get("end_time") or 0)
        inputs = [
            RestDatasetInput(
                RestDataset(
                    str(d.get("dataset", {}).get("name", "")),
                    str(d.get("dataset", {}).get("digest", "")),
                    str(d.get("dataset", {}).get("source_type", "")),
                    str(d.get("dataset", {}).get("source", "")),
                ),
                [
                    RestTag(str(t.get("key", "")), str(t.get("value", "")))
                    for t in d.get("tags") or []
                ],
            )
            for d in (run.get("inputs") or {}).get("dataset_inputs") or []
        ]
        return cls(
            RestRunInfo(
                run_id=str(info.get("run_id") or info.get("run_uuid")),
                experiment_id=str(info.get("experiment_id", "")),
                run_name=str(info.get("run_name", "")),
                status=str(info.get("status", "RUNNING")),
                start_time=int(info.get("start_time") or 0),
                # As RunInfo.from_proto: a zero end time means none.
                end_time=end_time or None,
                artifact_uri=str(info.get("artifact_uri", "")),
                lifecycle_stage=str(info.get("lifecycle_stage", "active")),
            ),
            RestRunData(
                params={p["key"]: str(p.get("value", "")) for p in data.get("params") or []},
                tags={t["key"]: str(t.get("value", "")) for t in data.get("tags") or []},
                metrics={m["key"]: _value(m) for m in data.get("metrics") or []},
            ),
            RestRunInputs(inputs),
        )


SEARCH_ENDPOINT = "/api/2.0/mlflow/runs/search"


def search_pages(
    client: MlflowClient | RestClient, experiment_id: str, policy: RetryPolicy | None = None
) -> Iterator[list[RestRun]]:
    """Every run of an experiment, all lifecycle stages, page by page from the JSON API."""
    call = _caller(client, policy)
    token: str | None = None
    while True:
        body: dict[str, Any] = {
            "experiment_ids": [experiment_id],
            "run_view_type": "ALL",
            "max_results": SEARCH_PAGE,
        }
        if token:
            body["page_token"] = token
        page = call(SEARCH_ENDPOINT, "POST", json=body)
        yield [RestRun.from_json(run) for run in page.get("runs") or []]
        token = page.get("next_page_token")
        if not token:
            return


History = dict[str, list[tuple[int, int, float]]]


def _page_records(
    client: MlflowClient | RestClient, page: list[RestRun], policy: RetryPolicy
) -> tuple[dict[str, History], dict[str, bytes]]:
    histories = fetch_histories(client, page, workers=1, policy=policy)
    records = {
        run.info.run_id: _record(client, run, histories.get(run.info.run_id, {})) for run in page
    }
    return histories, records


def fetch_ledger(
    client: MlflowClient | RestClient,
    tracking_uri: str,
    experiment_id: str,
    policy: RetryPolicy | None = None,
) -> Ledger:
    """Every run of the experiment (deleted ones too), histories, records, leaves.

    Pipelined: while the next page of runs is being listed, the histories of the
    pages already listed are fetched and their records recomputed, so listing,
    history requests and hashing overlap instead of adding up. Each request is
    retried on its own under `policy` (default: RetryPolicy()).
    """
    policy = policy or RetryPolicy()
    runs: list[RestRun] = []
    histories: dict[str, History] = {}
    records: dict[str, bytes] = {}
    with ThreadPoolExecutor(max_workers=PAGE_WORKERS) as pool:
        jobs = []
        for page in search_pages(client, experiment_id, policy):
            runs.extend(page)
            jobs.append(pool.submit(_page_records, client, page, policy))
        for job in jobs:
            page_histories, page_records = job.result()
            histories.update(page_histories)
            records.update(page_records)
    leaves: list[Leaf] = []
    for run in runs:
        tags = run.data.tags
        seq, sha = tags.get(run_record.SEAL_SEQ_TAG), tags.get(run_record.SEAL_SHA256_TAG)
        if seq is not None and sha is not None and seq.isdigit():
            leaves.append(Leaf(int(seq), run.info.run_id, sha))
    leaves.sort(key=lambda leaf: (leaf.seq, leaf.run_id))
    return Ledger(tracking_uri, experiment_id, leaves, records, list(runs), histories)


def _record(
    client: MlflowClient | RestClient,
    run: Run | RestRun,
    history: Mapping[str, list[tuple[int, int, float]]],
) -> bytes:
    """The record the seal must match, with the logged models and traces the run produced."""
    from audit.tracking.produced import record_from_rest

    # A key listed in the run but absent from the bulk answer has an empty history.
    full = {key: history.get(key, []) for key in run.data.metrics}
    if run_record.has_outputs(run.data.tags):  # models and traces: MLflow's client asks
        client = mlflow_client(client)
    return record_from_rest(client, run, full)
