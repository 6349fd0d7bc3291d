"""TensorBoard: every scalar point of the event files under a declared log directory.

Read with tensorboard's own record reader, event by event: nothing is sampled (the
EventAccumulator that TensorBoard's UI uses keeps a reservoir sample of 1,000 scalars
per tag by default) and nothing is skipped (its loader stops quietly at a bad
record). A tag of an event file directly in the log directory is its key; one in a
sub-directory (a TensorBoard "run", such as `train/`) is `<sub-directory>/<tag>`.
The import is lazy: tensorboard is an extra.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from audit.protocol.metric_sources import MetricPoint, MetricSource, SourceReading
from audit.protocol.metric_sources.files import (
    SourceProblem,
    checked_dir,
    read_bytes,
    regular_files,
    relative,
)
from audit.protocol.metric_sources.history import ordered, values_from_histories
from audit.protocol.metrics import printable

EVENT_FILE_MARK = "tfevents"
SCALARS_PLUGIN = "scalars"
INSTALL_HINT = "pip install 'mlaudit[tensorboard]'"


def read_tensorboard(
    source: MetricSource, trial_dir: Path, required: Sequence[str]
) -> SourceReading:
    name = str(source.dir)
    try:
        root = checked_dir(trial_dir, name, "TensorBoard log")
        event_files = [p for p in regular_files(root, trial_dir) if EVENT_FILE_MARK in p.name]
        if not event_files:
            raise SourceProblem(f"{name}: the trial wrote no TensorBoard event files")
        files: dict[str, str] = {}
        histories: dict[str, list[MetricPoint]] = {}
        for path in event_files:
            shown = relative(path, trial_dir)
            files[shown] = hashlib.sha256(read_bytes(path, trial_dir)).hexdigest()
            run = path.parent.relative_to(root).as_posix()
            for tag, point in _scalars(path, shown):
                key = tag if run == "." else f"{run}/{tag}"
                histories.setdefault(key, []).append(point)
    except SourceProblem as problem:
        return SourceReading.failed(printable(str(problem), 400))
    histories = {key: ordered(points) for key, points in histories.items()}
    metrics, problem_text = values_from_histories(source, histories, required, name)
    if metrics is None:
        return SourceReading.failed(printable(str(problem_text), 400))
    return SourceReading(metrics, history=histories, files=files)


def _tensorboard() -> tuple[Any, ...]:
    """tensorboard's modules this reader uses, or a problem saying how to install them."""
    try:
        from tensorboard import data_compat  # type: ignore[import-untyped]
        from tensorboard.compat.proto import event_pb2  # type: ignore[import-untyped]
        from tensorboard.compat.tensorflow_stub import (  # type: ignore[import-untyped]
            errors,
            pywrap_tensorflow,
        )
        from tensorboard.util import tensor_util  # type: ignore[import-untyped]
    except ImportError:
        raise SourceProblem(
            f"reading TensorBoard event files needs tensorboard: {INSTALL_HINT}"
        ) from None
    return data_compat, event_pb2, errors, pywrap_tensorflow, tensor_util


def _events(path: Path, shown: str) -> Iterator[Any]:
    """Every event of the file, refusing a corrupt or truncated record.

    tensorboard's EventFileLoader stops quietly at a bad record (a file still being
    written may complete it later); a finished trial's file must be whole, or the
    points after the bad record would be lost without a word. So the records come
    from tensorboard's own TF-free record reader, each through its data_compat layer.
    """
    data_compat, event_pb2, errors, pywrap_tensorflow, _ = _tensorboard()
    reader = pywrap_tensorflow.PyRecordReader_New(str(path))
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return
        except errors.DataLossError:
            raise SourceProblem(f"{shown}: a corrupt or truncated record") from None
        yield data_compat.migrate_event(event_pb2.Event.FromString(reader.record()))


def _scalars(path: Path, shown: str) -> Iterator[tuple[str, MetricPoint]]:
    """(tag, point) for every scalar value of one event file, in file order."""
    tensor_util = _tensorboard()[-1]
    scalar_tags: set[str] = set()
    try:
        for event in _events(path, shown):
            for value in event.summary.value:
                # data_compat gives legacy simple_value scalars this metadata too;
                # TensorBoard writes it on a tag's first value only.
                if value.metadata.plugin_data.plugin_name == SCALARS_PLUGIN:
                    scalar_tags.add(value.tag)
                if value.tag not in scalar_tags:
                    continue
                number = tensor_util.make_ndarray(value.tensor)
                if number.size != 1:
                    raise SourceProblem(f"{shown}: tag {value.tag!r} is not a scalar")
                stamp = round(event.wall_time * 1000)
                yield str(value.tag), MetricPoint(int(event.step), float(number.item()), stamp)
    except SourceProblem:
        raise
    except Exception as error:  # a corrupt file may raise anything from protobuf
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise SourceProblem(f"{shown}: not a readable TensorBoard event file ({first})") from None
