"""The canonical record of a sealed MLflow run: one pure function, shared by the store and verify.

It never touches a database or the network: the server-side store feeds it rows it
just read inside the sealing transaction, `mlaudit track verify` feeds it what the
REST API returns; both must produce the same bytes for an untouched run.

Record layout (version ``mlaudit.run-record/1``)
=================================================

The record is the RFC 8785 (JCS) serialisation of this JSON object; the seal is
``sha256(record)`` as lowercase hex, stored as tag ``mlaudit.seal.sha256`` next to
the per-experiment sequence number ``mlaudit.seal.seq`` (decimal, contiguous from 0)::

    {
      "format":        "mlaudit.run-record/1",
      "run_id":        str,              # run_uuid, 32 hex chars
      "experiment_id": str,              # as MLflow reports it (a decimal string)
      "run_name":      str,              # run_info.run_name ("" when unset)
      "status":        str,              # terminal: "FINISHED" | "FAILED" | "KILLED"
      "start_time":    int | null,       # ms since epoch; 0 is written as null
      "end_time":      int | null,       # ms since epoch; 0 is written as null
      "artifact_uri":  str,              # run_info.artifact_uri exactly as stored
      "artifacts_sha256": str | null,    # value of tag "mlaudit.artifacts.sha256", else null
      "params":  {key: value, ...},      # every param, values are strings
      "tags":    {key: value, ...},      # every tag EXCEPT keys starting "mlaudit.seal."
      "metrics": {key: [[step, timestamp, value], ...], ...},   # FULL histories
      "datasets": [ {"name", "digest", "source_type", "source", "tags": {k: v}}, ... ]
    }

Version ``mlaudit.run-record/2`` is the same object with two more keys, and is used
only when the run produced logged models or has linked traces (so every record of a
run without them is byte-for-byte the version 1 record, and old seals still verify)::

      "models": [                        # logged models whose source_run_id is the run
        {"model_id": str, "name": str, "model_type": str, "status": str,
         "params": {k: v}, "tags": {k: v},  # minus "mlaudit.seal.*", "mlflow.modelVersions"
         "metrics": [[key, step, timestamp, value], ...],  # every model metric point
         "artifacts_sha256": str | null}, ...       # tag "mlaudit.seal.artifacts.sha256"
      ],                                 # sorted by model_id
      "traces": [trace_id, ...]          # linked traces (metadata mlflow.sourceRun or a
                                         # trace-to-run link), sorted, each once

Encoding rules (the parts JSON alone leaves open):

* ``metrics``: each history is the set of ``(step, timestamp, value)`` points MLflow
  keeps for the key (its primary key dedups exact repeats), sorted by step, then
  timestamp, then the JCS text of the encoded value. Exact duplicates are kept once.
* Metric values are JSON numbers when finite; NaN, +inf and -inf are the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"``. Note that MLflow's SQL store clamps
  +/-inf to +/-1.7976931348623157e308 before storing, so a sealed record (built
  from stored rows) shows the clamped number, and so does the REST API.
* Integers (step, timestamps) outside JCS's safe range (|n| > 2**53 - 1) are
  decimal strings; inside it they are JSON integers. ``-0.0`` serialises as ``0``.
* ``datasets`` (from ``log_inputs``) are sorted by the JCS text of each entry.
  The run's model inputs/outputs links are not part of the record; the models the
  run produced are (version 2, key ``models``).
* Keys of every object are sorted by JCS itself (UTF-16 code units).

``mlaudit.artifacts.sha256`` is set by the client to the sha256 (hex) of the
artifact manifest it uploads as artifact ``mlaudit/artifacts.json`` before ending
the run; being a tag it is also inside ``tags``. It is repeated at top level so a
reader sees at a glance whether artifacts were covered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RECORD_FORMAT = "mlaudit.run-record/1"
RECORD_FORMAT_WITH_OUTPUTS = "mlaudit.run-record/2"
SEAL_TAG_PREFIX = "mlaudit.seal."
SEAL_SEQ_TAG = "mlaudit.seal.seq"
SEAL_SHA256_TAG = "mlaudit.seal.sha256"
# Set (to RECORD_FORMAT_WITH_OUTPUTS) only on runs sealed with a version 2 record, so a
# verifier asks the server for logged models and traces only for those runs.
SEAL_FORMAT_TAG = "mlaudit.seal.format"
ARTIFACTS_SHA256_TAG = "mlaudit.artifacts.sha256"
ARTIFACT_MANIFEST_PATH = "mlaudit/artifacts.json"
# Written by the store on each logged model of a run when it seals the run: the sha256
# of the model's artifact manifest (see `artifact_manifest_sha256`).
MODEL_ARTIFACTS_SHA256_TAG = "mlaudit.seal.artifacts.sha256"
# MLflow's back-reference from a logged model to the registry versions made from it.
# Registering a version writes it, usually after the run is sealed; the append-only
# registry holds the versions themselves, so the record leaves this tag out.
MODEL_REGISTRY_TAG = "mlflow.modelVersions"
# Written by the store at seal time so the MLflow UI shows plainly that a run is sealed.
SEALED_TAG = "mlaudit.sealed"
TERMINAL_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})

_SAFE_INT = 2**53 - 1

# (step, timestamp, value) as MLflow reports one point of a metric history.
MetricPoint = tuple[int, int, float]


@dataclass(frozen=True)
class DatasetRef:
    """One dataset input of a run (what `log_inputs` recorded)."""

    name: str
    digest: str
    source_type: str
    source: str
    tags: Mapping[str, str] = field(default_factory=dict)


# (key, step, timestamp, value) of one metric point of a logged model.
ModelMetricPoint = tuple[str, int, int, float]


@dataclass(frozen=True)
class ModelRef:
    """One logged model a run produced, as it stands when the run is sealed."""

    model_id: str
    name: str
    model_type: str
    status: str
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Sequence[ModelMetricPoint] = ()


@dataclass(frozen=True)
class RunRecordInput:
    """Plain data a run record is built from; both the store and verify fill one."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int | None
    end_time: int | None
    params: Mapping[str, str]
    tags: Mapping[str, str]
    metric_history: Mapping[str, Sequence[MetricPoint]]
    run_name: str = ""
    artifact_uri: str = ""
    datasets: Sequence[DatasetRef] = ()
    models: Sequence[ModelRef] = ()
    trace_ids: Sequence[str] = ()


def _jcs(value: object) -> bytes:
    import rfc8785  # light, but only record builders need it

    return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]


def _encode_int(number: int | None) -> int | str | None:
    if number is None:
        return None
    number = int(number)
    return number if -_SAFE_INT <= number <= _SAFE_INT else str(number)


def _encode_time(millis: int | None) -> int | str | None:
    # MLflow's REST API speaks proto3, where 0 and "unset" are the same value: a run
    # stored with end_time 0 comes back as null. Both must give the same record.
    return _encode_int(millis) if millis else None


def _encode_value(value: float) -> float | str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _history(points: Iterable[MetricPoint]) -> list[list[Any]]:
    encoded = {
        (int(step), int(timestamp), _jcs(_encode_value(value))): [
            _encode_int(step),
            _encode_int(timestamp),
            _encode_value(value),
        ]
        for step, timestamp, value in points
    }
    return [encoded[key] for key in sorted(encoded)]


def _dataset(ref: DatasetRef) -> dict[str, Any]:
    return {
        "name": ref.name,
        "digest": ref.digest,
        "source_type": ref.source_type,
        "source": ref.source,
        "tags": {str(k): str(v) for k, v in ref.tags.items()},
    }


def _model(ref: ModelRef) -> dict[str, Any]:
    points = {
        (str(key), int(step), int(timestamp), _jcs(_encode_value(value))): [
            str(key),
            _encode_int(step),
            _encode_int(timestamp),
            _encode_value(value),
        ]
        for key, step, timestamp, value in ref.metrics
    }
    tags = {str(k): str(v) for k, v in ref.tags.items()}
    return {
        "model_id": str(ref.model_id),
        "name": str(ref.name),
        "model_type": str(ref.model_type or ""),
        "status": str(ref.status),
        "params": {str(k): str(v) for k, v in ref.params.items()},
        "tags": {
            k: v
            for k, v in tags.items()
            if not k.startswith(SEAL_TAG_PREFIX) and k != MODEL_REGISTRY_TAG
        },
        "metrics": [points[key] for key in sorted(points)],
        "artifacts_sha256": tags.get(MODEL_ARTIFACTS_SHA256_TAG),
    }


def artifact_manifest_sha256(manifest: Mapping[str, str]) -> str:
    """sha256 of the JCS text of {relative path: sha256 of the file's bytes}."""
    return record_sha256(_jcs({str(k): str(v) for k, v in manifest.items()}))


def canonical_run_record(
    run_id: str,
    experiment_id: str,
    status: str,
    start_time: int | None,
    end_time: int | None,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    metric_history: Mapping[str, Sequence[MetricPoint]],
    *,
    run_name: str = "",
    artifact_uri: str = "",
    datasets: Sequence[DatasetRef] = (),
    models: Sequence[ModelRef] = (),
    trace_ids: Sequence[str] = (),
) -> bytes:
    """The canonical bytes of a run (layout in the module docstring); seal tags excluded."""
    kept_tags = {str(k): str(v) for k, v in tags.items() if not k.startswith(SEAL_TAG_PREFIX)}
    encoded_datasets = sorted((_dataset(d) for d in datasets), key=_jcs)
    document: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "run_id": str(run_id),
        "experiment_id": str(experiment_id),
        "run_name": run_name or "",
        "status": str(status),
        "start_time": _encode_time(start_time),
        "end_time": _encode_time(end_time),
        "artifact_uri": artifact_uri or "",
        "artifacts_sha256": kept_tags.get(ARTIFACTS_SHA256_TAG),
        "params": {str(k): str(v) for k, v in params.items()},
        "tags": kept_tags,
        "metrics": {str(k): _history(v) for k, v in metric_history.items()},
        "datasets": encoded_datasets,
    }
    if models or trace_ids:
        document["format"] = RECORD_FORMAT_WITH_OUTPUTS
        document["models"] = sorted((_model(m) for m in models), key=lambda m: m["model_id"])
        document["traces"] = sorted({str(t) for t in trace_ids})
    return _jcs(document)


def record_bytes(data: RunRecordInput) -> bytes:
    """`canonical_run_record` over a filled `RunRecordInput`."""
    return canonical_run_record(
        data.run_id,
        data.experiment_id,
        data.status,
        data.start_time,
        data.end_time,
        data.params,
        data.tags,
        data.metric_history,
        run_name=data.run_name,
        artifact_uri=data.artifact_uri,
        datasets=data.datasets,
        models=data.models,
        trace_ids=data.trace_ids,
    )


@dataclass(frozen=True)
class PendingRecord:
    """A run's record with one tag's value still open: the bytes around that value.

    JCS orders object members by key and encodes each value on its own, so the record
    with the tag set to any string is `head + JCS(value) + tail`. The store builds this
    before it takes the experiment's seal lock and only fills in the sealed tag (whose
    text names the sequence number) under it.
    """

    head: bytes
    tail: bytes

    @classmethod
    def of(cls, data: RunRecordInput, tag: str) -> PendingRecord | None:
        """None when the tag cannot be left open (a seal tag, or the marker is not unique)."""
        import uuid

        if tag.startswith(SEAL_TAG_PREFIX):
            return None  # left out of the record: there is no value to fill in
        marker = f"mlaudit-pending-{uuid.uuid4().hex}"
        record = record_bytes(dataclasses.replace(data, tags={**data.tags, tag: marker}))
        encoded = _jcs(marker)
        if record.count(encoded) != 1:
            return None
        head, _, tail = record.partition(encoded)
        return cls(head, tail)

    def record(self, value: str) -> bytes:
        """The record with the tag set to `value`: `record_bytes` of that very input."""
        return self.head + _jcs(str(value)) + self.tail


def has_outputs(tags: Mapping[str, str]) -> bool:
    """Whether a sealed run's record is version 2 (it produced models or traces)."""
    return tags.get(SEAL_FORMAT_TAG) == RECORD_FORMAT_WITH_OUTPUTS


def record_sha256(record: bytes) -> str:
    """The seal digest of a record: sha256, lowercase hex."""
    return hashlib.sha256(record).hexdigest()


def record_input_from_run(
    run: Any,
    metric_history: Mapping[str, Sequence[Any]],
    *,
    logged_models: Iterable[Any] = (),
    trace_ids: Iterable[str] = (),
) -> RunRecordInput:
    """Build the record input from an `mlflow.entities.Run` and its metric histories.

    `metric_history` maps each metric key (all keys of `run.data.metrics`) to the
    list of `mlflow.entities.Metric` that `MlflowClient.get_metric_history` returns
    (objects with `.step`, `.timestamp`, `.value`); (step, timestamp, value) tuples
    are accepted as well. Works on REST data, so verify needs no database.
    `logged_models` are the `mlflow.entities.LoggedModel`s whose source run is this
    run and `trace_ids` the ids of its linked traces (see `audit.tracking.produced`).
    """
    info, data = run.info, run.data
    datasets: list[DatasetRef] = []
    inputs = getattr(run, "inputs", None)
    for dataset_input in getattr(inputs, "dataset_inputs", None) or []:
        ds = dataset_input.dataset
        datasets.append(
            DatasetRef(
                name=ds.name,
                digest=ds.digest,
                source_type=ds.source_type,
                source=ds.source,
                tags={t.key: t.value for t in dataset_input.tags or []},
            )
        )
    return RunRecordInput(
        run_id=info.run_id,
        experiment_id=str(info.experiment_id),
        status=str(info.status),
        start_time=info.start_time,
        end_time=info.end_time,
        params=dict(data.params),
        tags=dict(data.tags),
        metric_history={key: [_point(p) for p in points] for key, points in metric_history.items()},
        run_name=info.run_name or "",
        artifact_uri=info.artifact_uri or "",
        datasets=datasets,
        models=[model_ref(m) for m in logged_models],
        trace_ids=list(trace_ids),
    )


def model_ref(model: Any) -> ModelRef:
    """A `ModelRef` from an `mlflow.entities.LoggedModel` (REST or store, same result)."""
    status = model.status
    status_name = getattr(status, "name", None) or str(status)
    return ModelRef(
        model_id=str(model.model_id),
        name=str(model.name),
        model_type=str(model.model_type or ""),
        status=status_name,
        params=dict(model.params or {}),
        tags=dict(model.tags or {}),
        metrics=[
            (str(m.key), int(m.step), int(m.timestamp), float(m.value)) for m in model.metrics or []
        ],
    )


def _point(point: Any) -> MetricPoint:
    if isinstance(point, tuple):
        step, timestamp, value = point
        return int(step), int(timestamp), float(value)
    return int(point.step), int(point.timestamp), float(point.value)
