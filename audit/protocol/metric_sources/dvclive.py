"""DVCLive: the summary `<dir>/metrics.json` and every step under `<dir>/plots/metrics/`.

DVCLive names a metric `train/loss`; the summary nests it ({"train": {"loss": ...}})
and its history is `plots/metrics/train/loss.tsv` (columns step, [timestamp,] loss).
Both become the key `train.loss`, nested keys joined with '.' as in any DVC metrics
file. DVCLive's own `step` counter in the summary is not a metric.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Sequence
from pathlib import Path

from audit.protocol.metric_sources import MetricPoint, MetricSource, SourceReading
from audit.protocol.metric_sources.files import (
    SourceProblem,
    checked_dir,
    read_bytes,
    regular_files,
    relative,
)
from audit.protocol.metric_sources.history import ordered, values_from_histories
from audit.protocol.metrics import printable, read_metrics

SUMMARY = "metrics.json"
HISTORIES = "plots/metrics"


def read_dvclive(source: MetricSource, trial_dir: Path, required: Sequence[str]) -> SourceReading:
    name = str(source.dir)
    try:
        root = checked_dir(trial_dir, name, "DVCLive")
        summary_path = root / SUMMARY
        reading = read_metrics(summary_path, (), within=trial_dir)
        if reading.metrics is None:
            raise SourceProblem(f"{name}/{reading.problem}")
        summary = {k: v for k, v in reading.metrics.items() if k != "step"}
        files = {relative(summary_path, trial_dir): _sha256(summary_path, trial_dir)}
        histories: dict[str, list[MetricPoint]] = {}
        plots = root / HISTORIES
        if plots.is_dir() and not plots.is_symlink():
            for path in regular_files(plots, trial_dir):
                if path.suffix != ".tsv":
                    continue
                data = read_bytes(path, trial_dir)
                files[relative(path, trial_dir)] = hashlib.sha256(data).hexdigest()
                key = path.relative_to(plots).with_suffix("").as_posix().replace("/", ".")
                histories[key] = ordered(_tsv_points(data, relative(path, trial_dir)))
        _check_agree(summary, histories, name)
    except SourceProblem as problem:
        return SourceReading.failed(printable(str(problem), 400))
    metrics, problem_text = values_from_histories(source, histories, required, name, summary)
    if metrics is None:
        return SourceReading.failed(printable(str(problem_text), 400))
    return SourceReading(metrics, history=histories, files=files)


def _sha256(path: Path, trial_dir: Path) -> str:
    return hashlib.sha256(read_bytes(path, trial_dir)).hexdigest()


def _tsv_points(data: bytes, name: str) -> list[MetricPoint]:
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8")), delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as error:
        raise SourceProblem(f"{name}: not a DVCLive history ({error})") from None
    if not rows:
        raise SourceProblem(f"{name}: empty")
    header = rows[0]
    values = [i for i, column in enumerate(header) if column not in ("step", "timestamp")]
    if "step" not in header or len(values) != 1:
        raise SourceProblem(f"{name}: expected columns step and one metric, found {header!r}")
    step_at, value_at = header.index("step"), values[0]
    stamp_at = header.index("timestamp") if "timestamp" in header else None
    points = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            value = float(row[value_at])
            stamp = round(float(row[stamp_at])) if stamp_at is not None else None
            points.append(MetricPoint(int(row[step_at]), value, stamp))
        except (IndexError, ValueError):
            raise SourceProblem(f"{name}: line {line} is not step and value") from None
        if not math.isfinite(value):
            raise SourceProblem(f"{name}: line {line}: the value is not finite ({value})")
    return points


def _check_agree(
    summary: dict[str, float], histories: dict[str, list[MetricPoint]], name: str
) -> None:
    """The summary and the history's last step must say the same (DVCLive writes both)."""
    for key, points in sorted(histories.items()):
        if points and key in summary and summary[key] != points[-1].value:
            raise SourceProblem(
                f"{name}/{SUMMARY} has {key} = {summary[key]!r} but its history "
                f"{name}/{HISTORIES}/{key.replace('.', '/')}.tsv ends with {points[-1].value!r}"
            )
