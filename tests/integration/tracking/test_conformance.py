"""Conformance: the same MLflow 3 scenarios against stock `mlflow server` and `mlaudit server`.

Both servers run side by side on loopback, each in its own process group (stopped by
group). Before the seal every scenario must read back identically (ids and clock
times aside); after it, stock MLflow accepts each change and mlaudit refuses it with
the documented 409 and a message in words. The real MLflow client, the REST API and
the UI's ajax API are used; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.tracking.sqlalchemy_store")
    pytest.importorskip("sklearn")

from audit.tracking import produced as run_outputs
from audit.tracking import record as run_record
from audit.tracking.server import ManagedServer

# Third-party noise (sklearn, pydantic, MLflow's model signature inference) is not ours.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]

TIMEOUT = 60
KINDS = ("mlflow", "mlaudit")


class StockServer(ManagedServer):
    """Plain `mlflow server`: stock SQL store, stock local artifact store."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--artifacts-destination") + 1
        command[at] = Path(self.artifacts_destination).resolve().as_uri()
        return command


@contextlib.contextmanager
def second_database(postgres_uri: str) -> Iterator[str]:
    """Another empty database beside the session's, for the stock server."""
    import psycopg

    prefix, _, name = postgres_uri.rpartition("/")
    other = f"{name}_stock"
    with psycopg.connect(f"{prefix}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {other}")
        try:
            yield f"{prefix}/{other}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {other} WITH (FORCE)")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ManagedServer]]:
    root = tmp_path_factory.mktemp(f"conformance-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            ours = request.getfixturevalue("postgres_uri")
            stock = stack.enter_context(second_database(ours))
        else:
            ours, stock = f"sqlite:///{root / 'audit.db'}", f"sqlite:///{root / 'stock.db'}"
        built = {
            "mlflow": StockServer(
                backend_store_uri=stock,
                artifacts_destination=str(root / "stock-artifacts"),
                log_path=root / "stock.log",
            ),
            "mlaudit": ManagedServer(
                backend_store_uri=f"mlaudit+{ours}",
                artifacts_destination=str(root / "audit-artifacts"),
                log_path=root / "audit.log",
            ),
        }
        for server in built.values():
            stack.callback(server.stop)
            server.start()
        yield built


# What the fluent API leaves in the environment (and so in later tests' subprocesses).
FLUENT_ENVIRONMENT = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")


@pytest.fixture(scope="module", autouse=True)
def fluent_state() -> Iterator[None]:
    """Synchronous trace export here; the process's MLflow state as it was afterwards."""
    import mlflow

    names = (*FLUENT_ENVIRONMENT, "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING")
    saved = {name: os.environ.get(name) for name in names}
    # Traces are exported in the foreground so a scenario reads back what it wrote.
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"
    yield
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.tracking.fluent._active_experiment_id = None
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def use(server: ManagedServer) -> Any:
    import mlflow
    from mlflow.tracing.provider import reset

    mlflow.set_tracking_uri(server.uri)
    reset()  # the trace exporter follows the new tracking URI
    return mlflow.MlflowClient(tracking_uri=server.uri)


@dataclass
class Trained:
    """What one scenario left on one server."""

    experiment_id: str
    run_id: str
    model_id: str
    trace_id: str


def train(server: ManagedServer, name: str) -> Trained:
    """An ordinary MLflow 3 training script: params, stepped metrics, a dataset, a model."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    client = use(server)
    experiment_id = mlflow.create_experiment(name)
    mlflow.set_experiment(experiment_id=experiment_id)
    features = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    labels = np.array([0, 0, 1, 1])
    with mlflow.start_run(run_name="trial") as run:
        run_id = run.info.run_id
        mlflow.log_params({"C": "1.0", "solver": "lbfgs"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_000 + step)
        mlflow.set_tags({"arm": "baseline", "scratch": "to be deleted"})
        client.delete_tag(run_id, "scratch")
        dataset = mlflow.data.from_numpy(features, targets=labels, name="train")
        mlflow.log_input(dataset, context="training")
        model = LogisticRegression(C=1.0).fit(features, labels)
        info = mlflow.sklearn.log_model(model, name="model")
        mlflow.log_metric("accuracy", 1.0, step=0, timestamp=2_000, model_id=info.model_id)
        with mlflow.start_span("predict") as span:
            span.set_inputs({"rows": 4})
            span.set_outputs({"positives": int(model.predict(features).sum())})
        client.set_experiment_tag(experiment_id, "mlflow.note.content", "what the study is")
    [trace] = client.search_traces(locations=[experiment_id], run_id=run_id)
    return Trained(experiment_id, run_id, info.model_id, trace.info.trace_id)


def readback(server: ManagedServer, trained: Trained) -> dict[str, Any]:
    """Everything a reader sees, minus ids, clock times and mlaudit's own seal tags."""
    import mlflow

    client = use(server)
    run = client.get_run(trained.run_id)
    history = {
        key: [
            (m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key)
        ]
        for key in run.data.metrics
    }
    [found] = client.search_runs([trained.experiment_id], "params.C = '1.0' and metrics.loss < 0.5")
    [model] = client.search_logged_models(
        [trained.experiment_id], filter_string=f"source_run_id = '{trained.run_id}'"
    )
    loaded = mlflow.sklearn.load_model(f"models:/{trained.model_id}")
    [trace] = client.search_traces(locations=[trained.experiment_id], run_id=trained.run_id)
    ajax = requests.post(
        f"{server.uri}/ajax-api/2.0/mlflow/runs/search",
        json={"experiment_ids": [trained.experiment_id]},
        timeout=TIMEOUT,
    )
    assert ajax.status_code == 200, ajax.text
    [ajax_run] = ajax.json()["runs"]
    return {
        "status": run.info.status,
        "run_name": run.info.run_name,
        "params": run.data.params,
        "metrics": run.data.metrics,
        "history": history,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlaudit.")},
        "datasets": [
            (d.dataset.name, d.dataset.digest, d.dataset.source_type, [t.value for t in d.tags])
            for d in run.inputs.dataset_inputs
        ],
        "outputs": [o.model_id == trained.model_id for o in run.outputs.model_outputs],
        "found": found.info.run_id == trained.run_id,
        "model": (
            model.name,
            str(model.status),
            model.params,
            {k: v for k, v in (model.tags or {}).items() if not k.startswith("mlaudit.")},
            [(m.key, m.value, m.step) for m in model.metrics or []],
        ),
        "prediction": loaded.predict([[0.0, 1.0], [3.0, 0.0]]).tolist(),
        "trace": (
            str(trace.info.state),
            [span.name for span in trace.data.spans],
            trace.data.spans[0].inputs,
            trace.data.spans[0].outputs,
        ),
        "experiment_tags": client.get_experiment(trained.experiment_id).tags.get(
            "mlflow.note.content"
        ),
        "ajax": (
            ajax_run["info"]["status"],
            sorted(p["key"] for p in ajax_run["data"]["params"]),
            sorted(m["key"] for m in ajax_run["data"]["metrics"]),
        ),
    }


@pytest.fixture(scope="module")
def trained(servers: dict[str, ManagedServer]) -> dict[str, Trained]:
    name = f"conformance-{uuid.uuid4().hex[:8]}"
    return {kind: train(servers[kind], name) for kind in KINDS}


def test_an_mlflow3_training_script_reads_back_identically(
    servers: dict[str, ManagedServer], trained: dict[str, Trained]
) -> None:
    stock = readback(servers["mlflow"], trained["mlflow"])
    ours = readback(servers["mlaudit"], trained["mlaudit"])
    assert ours == stock
    assert stock["prediction"] == [0, 1]  # a real model went through both servers


def test_the_seal_covers_the_model_and_the_trace(
    servers: dict[str, ManagedServer], trained: dict[str, Trained]
) -> None:
    # What `track verify` recomputes from REST alone must match the seal.
    client = use(servers["mlaudit"])
    run = client.get_run(trained["mlaudit"].run_id)
    outputs = run_outputs.from_rest(client, run)
    assert [m.model_id for m in outputs.models] == [trained["mlaudit"].model_id]
    assert outputs.trace_ids == [trained["mlaudit"].trace_id]
    history = {key: client.get_metric_history(run.info.run_id, key) for key in run.data.metrics}
    data = run_record.record_input_from_run(
        run, history, logged_models=outputs.models, trace_ids=outputs.trace_ids
    )
    record = run_record.record_bytes(data)
    assert record == run_outputs.record_from_rest(client, run, history)  # the ledger's call
    assert b'"format":"mlaudit.run-record/2"' in record
    assert run_record.record_sha256(record) == run.data.tags[run_record.SEAL_SHA256_TAG]
    assert run.data.tags[run_record.SEALED_TAG].startswith("sealed (sequence 0) at ")
    # The model's files are what the sealed manifest digest says.
    [model] = outputs.models
    manifest = run_outputs.rest_model_manifest(
        client, model, str(Path(servers["mlaudit"].log_path or ".").parent / "download")
    )
    assert (
        run_record.artifact_manifest_sha256(manifest)
        == (model.tags[run_record.MODEL_ARTIFACTS_SHA256_TAG])
    )


def rest(
    server: ManagedServer, path: str, body: dict[str, Any], method: str = "POST"
) -> requests.Response:
    url = f"{server.uri}/api/2.0/mlflow/{path}"
    return requests.request(method, url, json=body, timeout=TIMEOUT)


def test_running_to_scheduled_and_an_end_without_end_time_match(
    servers: dict[str, ManagedServer],
) -> None:
    seen = {}
    for kind in KINDS:
        server = servers[kind]
        experiment = rest(server, "experiments/create", {"name": f"s-{uuid.uuid4().hex}"})
        experiment_id = experiment.json()["experiment_id"]
        created = rest(server, "runs/create", {"experiment_id": experiment_id, "start_time": 5})
        run_id = created.json()["run"]["info"]["run_id"]
        scheduled = rest(server, "runs/update", {"run_id": run_id, "status": "SCHEDULED"})
        ended = rest(server, "runs/update", {"run_id": run_id, "status": "FINISHED"})
        info = requests.get(
            f"{server.uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=TIMEOUT
        ).json()["run"]["info"]
        seen[kind] = (
            scheduled.status_code,
            scheduled.json()["run_info"]["status"],
            ended.status_code,
            info["status"],
            info.get("end_time"),
        )
    assert seen["mlaudit"] == seen["mlflow"] == (200, "SCHEDULED", 200, "FINISHED", None)


# After the seal: what stock MLflow accepts and mlaudit refuses, with the words it uses.
AFTER_SEAL: dict[str, tuple[str, dict[str, Any], str]] = {
    "rename": ("runs/update", {"run_name": "renamed"}, "runs cannot be renamed after they end"),
    "reopen": ("runs/update", {"status": "RUNNING"}, "cannot be reopened"),
    "log-param": (
        "runs/log-parameter",
        {"key": "late", "value": "1"},
        "parameters cannot be added after a run ends",
    ),
    "log-metric": (
        "runs/log-metric",
        {"key": "loss", "value": 0.0, "timestamp": 9, "step": 9},
        "metrics cannot be added after a run ends",
    ),
    "set-tag": ("runs/set-tag", {"key": "arm", "value": "x"}, "tags cannot be changed"),
    "delete-tag": ("runs/delete-tag", {"key": "arm"}, "tags cannot be deleted after a run ends"),
    "delete-run": ("runs/delete", {}, "runs cannot be deleted"),
    "model-tag": (
        "PATCH logged-models/MODEL/tags",
        {"tags": [{"key": "stage", "value": "late"}]},
        "the tags of its models cannot change",
    ),
    "model-params": (
        "logged-models/MODEL/params",
        {"model_id": "MODEL", "params": [{"key": "late", "value": "1"}]},
        "the parameters of its models cannot change",
    ),
    "new-model": (
        "logged-models",
        {"experiment_id": "EXPERIMENT", "name": "late", "source_run_id": "RUN"},
        "models cannot be logged to a run after it ends",
    ),
}


@pytest.mark.parametrize("change", sorted(AFTER_SEAL))
def test_after_the_seal_stock_accepts_and_mlaudit_refuses_in_words(
    servers: dict[str, ManagedServer], trained: dict[str, Trained], change: str
) -> None:
    where, body, words = AFTER_SEAL[change]
    method, _, path = where.rpartition(" ")
    answers = {}
    for kind in KINDS:
        run = trained[kind]
        # The stock run is ended too, so both are in the same state apart from the seal.
        filled = {
            key: {"EXPERIMENT": run.experiment_id, "RUN": run.run_id, "MODEL": run.model_id}.get(
                value, value
            )
            if isinstance(value, str)
            else value
            for key, value in body.items()
        }
        endpoint = path.replace("MODEL", run.model_id)
        answers[kind] = rest(
            servers[kind], endpoint, {"run_id": run.run_id, **filled}, method or "POST"
        )
    assert answers["mlflow"].status_code == 200, answers["mlflow"].text
    if change == "delete-run":  # stock deleted it: bring it back for the other cases
        restored = rest(servers["mlflow"], "runs/restore", {"run_id": trained["mlflow"].run_id})
        assert restored.status_code == 200, restored.text
    refused = answers["mlaudit"]
    assert refused.status_code == 409, refused.text
    error = refused.json()
    assert error["error_code"] == "RESOURCE_CONFLICT"
    assert error["message"].startswith("mlaudit: this run is sealed (experiment ")
    assert words in error["message"]


def test_a_refused_trace_is_not_reported_as_an_authentication_failure(
    servers: dict[str, ManagedServer], trained: dict[str, Trained]
) -> None:
    from mlflow.entities.trace_info import TraceInfo
    from mlflow.entities.trace_location import TraceLocation
    from mlflow.entities.trace_state import TraceState
    from mlflow.exceptions import MlflowException
    from mlflow.tracing.export.mlflow_v3 import _is_auth_failure

    run = trained["mlaudit"]
    client = use(servers["mlaudit"])
    info = TraceInfo(
        trace_id=f"tr-{uuid.uuid4().hex}",
        trace_location=TraceLocation.from_experiment_id(run.experiment_id),
        request_time=1,
        state=TraceState.OK,
        trace_metadata={"mlflow.sourceRun": run.run_id},
    )
    with pytest.raises(MlflowException) as caught:
        client._tracing_client.store.start_trace(info)
    assert "traces cannot be added to a run after it ends" in caught.value.message
    assert not _is_auth_failure(caught.value)  # MLflow would say "Refresh your credentials"


def test_experiment_deletes_and_renames_are_refused_in_words(
    servers: dict[str, ManagedServer], trained: dict[str, Trained]
) -> None:
    experiment_id = trained["mlaudit"].experiment_id
    for path, body in (
        ("experiments/delete", {}),
        ("experiments/update", {"new_name": "other"}),
    ):
        answer = rest(servers["mlaudit"], path, {"experiment_id": experiment_id, **body})
        assert answer.status_code == 409, answer.text
        assert "append-only" in answer.json()["message"]
        assert "_experiment" not in answer.json()["message"]  # no internal method names


def registry_is_append_only(server: ManagedServer) -> bool:
    from audit.tracking.server import registry_store_uri

    return registry_store_uri(server.backend_store_uri).startswith("mlaudit+")


def test_the_registry_reads_alike_and_refuses_deletes_on_mlaudit(
    servers: dict[str, ManagedServer], trained: dict[str, Trained]
) -> None:
    # Registering a sealed run's model works with any registry; the refusals need the
    # append-only one, which servers use once its entry point is installed.
    import mlflow

    name = f"fraud-{uuid.uuid4().hex[:8]}"
    seen, refused = {}, {}
    for kind in KINDS:
        client = use(servers[kind])
        version = mlflow.register_model(f"models:/{trained[kind].model_id}", name)
        client.set_registered_model_alias(name, "candidate", version.version)
        candidate = client.get_model_version_by_alias(name, "candidate")
        seen[kind] = (version.version, candidate.version, candidate.run_id == trained[kind].run_id)
        refused[kind] = [
            rest(servers[kind], path, body, method).status_code
            for method, path, body in (
                # `champion` is gated on mlaudit: only `mlaudit promote` moves it.
                (
                    "POST",
                    "registered-models/alias",
                    {"name": name, "alias": "champion", "version": "1"},
                ),
                ("DELETE", "registered-models/alias", {"name": name, "alias": "candidate"}),
                ("DELETE", "model-versions/delete", {"name": name, "version": "1"}),
                ("POST", "registered-models/rename", {"name": name, "new_name": f"{name}-x"}),
            )
        ]
    assert seen["mlaudit"] == seen["mlflow"] == ("1", "1", True)
    assert refused["mlflow"] == [200, 200, 200, 200]
    if not registry_is_append_only(servers["mlaudit"]):
        pytest.skip("registry refusals: no mlflow.model_registry_store entry point for mlaudit+")
    assert refused["mlaudit"] == [409, 409, 409, 409]


def test_track_verify_checks_the_runs_that_produced_models_and_traces(
    servers: dict[str, ManagedServer], trained: dict[str, Trained]
) -> None:
    # The ledger recomputes each record with the run's models and traces
    # (produced.record_from_rest); a record without them would not match the seal.
    from audit.tracking.ledger import fetch_ledger
    from audit.tracking.ledger_verify import verify_ledger

    client = use(servers["mlaudit"])
    run = client.get_run(trained["mlaudit"].run_id)
    experiment_id = str(run.info.experiment_id)
    ledger = fetch_ledger(client, servers["mlaudit"].uri, experiment_id)
    assert [leaf.run_id for leaf in ledger.leaves] == [run.info.run_id]
    verification = verify_ledger(ledger, None)
    assert verification.ok, [t.message for t in verification.findings]
    assert b'"format":"mlaudit.run-record/2"' in ledger.records[run.info.run_id]
