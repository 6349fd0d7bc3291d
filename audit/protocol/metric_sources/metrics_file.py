"""The default source: the trial's metrics file (DVC metrics format), read by digest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audit.protocol.metric_sources import MetricSource, SourceReading
from audit.protocol.metrics import read_metrics


def read_metrics_file(
    source: MetricSource, trial_dir: Path, required: Sequence[str]
) -> SourceReading:
    path = trial_dir / source.file
    reading = read_metrics(path, required, within=trial_dir)
    if reading.metrics is None:
        problem = str(reading.problem)
        if not path.exists() and not path.is_symlink():
            # The first thing a new user gets wrong: writing it into the working directory.
            problem += (
                " into $MLAUDIT_TRIAL_DIR (the trial's own folder, not the working directory)"
            )
        return SourceReading.failed(problem)
    # read_metrics refused symlinks and paths outside the trial directory already, and
    # hashed the bytes it parsed (the file's sha256, without reading it a second time).
    assert reading.sha256 is not None
    return SourceReading(reading.metrics, files={source.file: reading.sha256})
