"""A trial that logs into its own MLflow run: the variables that point its MLflow client there."""

from __future__ import annotations

import dataclasses

from audit.protocol.metric_sources import TrialRun
from audit.protocol.trial import TrialSpec


def with_trial_run(spec: TrialSpec, tracking_uri: str, run_id: str) -> TrialSpec:
    """`spec` whose process logs into `run_id`: mlflow.start_run() (and autolog, and any
    fluent call that starts a run) resumes it instead of creating one."""
    env = {
        **spec.env,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_RUN_ID": run_id,
    }
    # A name or id of another experiment would make start_run refuse the run.
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    return dataclasses.replace(spec, env=env, trial_run=TrialRun(tracking_uri, run_id))
