"""MLflow inside the trial: read the metrics back from the trial's own (still open) run.

The runner opened the run before the trial started and gave the trial its id in
MLFLOW_RUN_ID, so a script calling mlflow.log_metric, autolog or log_model logged
into it. Every metric of the run is the trial's (the sealed run is compared with
results.json key by key); each key's value is its latest point, as MLflow and
`track verify` define it. The run is ended and sealed afterwards by the logger.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

from audit.protocol.metric_sources import MetricPoint, SourceReading, TrialRun
from audit.protocol.metric_sources.history import ordered
from audit.protocol.metrics import printable


def read_trial_run(trial_run: TrialRun, required: Sequence[str]) -> SourceReading:
    from mlflow.exceptions import MlflowException

    from audit.tracking.client import connect

    where = f"the trial's MLflow run {trial_run.run_id}"
    try:
        client = connect(trial_run.tracking_uri)
        run = client.get_run(trial_run.run_id)
        histories = {
            str(key): ordered(
                [
                    MetricPoint(int(m.step), float(m.value), int(m.timestamp))
                    for m in client.get_metric_history(trial_run.run_id, key)
                ]
            )
            for key in sorted(run.data.metrics)
        }
    except (MlflowException, OSError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        return SourceReading.failed(f"could not read {where}: {printable(first, 300)}")
    metrics = {key: points[-1].value for key, points in histories.items() if points}
    absent = [name for name in required if name not in metrics]
    if absent:
        return SourceReading.failed(f"{where} has no metric '{printable(absent[0], 120)}'")
    bad = next((key for key, value in metrics.items() if not math.isfinite(value)), None)
    if bad is not None:
        return SourceReading.failed(
            f"{where}: metric '{printable(bad, 120)}' is not finite ({metrics[bad]})"
        )
    return SourceReading(metrics, run_id=trial_run.run_id, histories_sha256=_digest(histories))


def _digest(histories: dict[str, list[MetricPoint]]) -> str:
    """Of every point read (NaN included, which canonical JSON cannot hold)."""
    text = json.dumps(
        {k: [[p.step, p.timestamp, p.value] for p in v] for k, v in histories.items()},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()
