"""Trial metric sources: where a trial's metrics come from, and reading them by digest.

The EDD's `protocol.metrics_source` names one: the metrics file (the default),
DVCLive, TensorBoard event files or the trial's own MLflow run. Whatever the source,
the reading says which files (or which run) the values came from and their sha256,
so the trial's record pins what was read. Every problem is a reason for that one
trial to fail, naming the file, never an exception: the files are written by the
trial, which is untrusted code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_KIND = "metrics_file"
DVCLIVE_DIR = "dvclive"
REDUCTIONS = ("last", "max", "min", "mean")


@dataclass(frozen=True)
class MetricPoint:
    step: int
    value: float
    timestamp: int | None = None  # ms since the epoch, when the source records it

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "value": self.value, "timestamp": self.timestamp}


@dataclass(frozen=True)
class MetricRule:
    """How one EDD metric is read from a history: the source key and its reduction."""

    key: str
    reduce: str = "last"
    last_k: int | None = None


@dataclass(frozen=True)
class MetricSource:
    """`protocol.metrics_source` of a verified EDD (schema and semantics already checked)."""

    kind: str = DEFAULT_KIND
    file: str = "metrics.json"  # metrics_file: the EDD's metrics.file
    dir: str | None = None
    rules: Mapping[str, MetricRule] = field(default_factory=dict)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> MetricSource:
        metrics = document.get("metrics") or {}
        declared = (document.get("protocol") or {}).get("metrics_source") or {}
        kind = str(declared.get("kind", DEFAULT_KIND))
        rules = {
            str(name): MetricRule(
                key=str(rule.get("key", name)),
                reduce=str(rule.get("reduce", "last")),
                last_k=int(rule["last_k"]) if "last_k" in rule else None,
            )
            for name, rule in (declared.get("metrics") or {}).items()
        }
        default_dir = DVCLIVE_DIR if kind == "dvclive" else None
        return cls(
            kind=kind,
            file=str(metrics.get("file", "metrics.json")),
            dir=str(declared.get("dir", default_dir)) if declared.get("dir", default_dir) else None,
            rules=rules,
        )

    def rule(self, metric: str) -> MetricRule:
        return self.rules.get(metric) or MetricRule(key=metric)

    def env(self) -> dict[str, str]:
        """What tells the trial's script where its metrics go (one EDD field switches it)."""
        env = {"MLAUDIT_METRICS_SOURCE": self.kind}
        if self.dir is not None:
            env["MLAUDIT_METRICS_DIR"] = self.dir
        return env

    @property
    def in_trial_run(self) -> bool:
        """Whether the trial logs into its own MLflow run (opened before it starts)."""
        return self.kind == "mlflow"


@dataclass(frozen=True)
class TrialRun:
    """The trial's own MLflow run, for kind mlflow: where to read the metrics back from."""

    tracking_uri: str
    run_id: str


@dataclass
class SourceReading:
    """The trial's metrics, their histories and what they were read from; or the reason not."""

    metrics: dict[str, float] | None
    problem: str | None = None
    history: dict[str, list[MetricPoint]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path in the trial dir -> sha256
    run_id: str | None = None
    histories_sha256: str | None = None  # kind mlflow: digest of the histories read

    @classmethod
    def failed(cls, problem: str) -> SourceReading:
        return cls(None, problem)

    def record(self, kind: str) -> dict[str, Any]:
        """The trial record's `metric_source`: what was read, by digest."""
        from audit.protocol.metric_sources.digest import source_sha256

        entry: dict[str, Any] = {"kind": kind}
        if self.run_id is not None:
            entry["run_id"] = self.run_id
        else:
            entry["files"] = dict(sorted(self.files.items()))
        entry["sha256"] = source_sha256(entry, self.histories_sha256)
        return entry

    def fields(self, kind: str) -> dict[str, Any]:
        """The trial record's fields for this reading: `metric_source` and any histories."""
        fields: dict[str, Any] = {"metric_source": self.record(kind)}
        if self.history:
            fields["metric_history"] = self.history_json()
        return fields

    def history_json(self) -> dict[str, list[dict[str, Any]]]:
        return {key: [p.to_json() for p in points] for key, points in sorted(self.history.items())}


def read_source(
    source: MetricSource,
    trial_dir: Path,
    required: Sequence[str],
    trial_run: TrialRun | None = None,
) -> SourceReading:
    """The trial's metrics from its declared source. Never raises."""
    if source.kind == "dvclive":
        from audit.protocol.metric_sources.dvclive import read_dvclive

        return read_dvclive(source, trial_dir, required)
    if source.kind == "tensorboard":
        from audit.protocol.metric_sources.tensorboard import read_tensorboard

        return read_tensorboard(source, trial_dir, required)
    if source.kind == "mlflow":
        from audit.protocol.metric_sources.mlflow_run import read_trial_run

        if trial_run is None:
            return SourceReading.failed("the trial had no MLflow run to log into")
        return read_trial_run(trial_run, required)
    from audit.protocol.metric_sources.metrics_file import read_metrics_file

    return read_metrics_file(source, trial_dir, required)
