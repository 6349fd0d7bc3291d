"""What each MLflow run will contain: keys, params, tags, times, limits, batches."""

from __future__ import annotations

import copy

import pytest

from audit.errors import InputError
from audit.tracking.client import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    _batches,
    connect,
)
from audit.tracking.rest_tracking import RestTracking
from audit.tracking.runspec import (
    MetricPoint,
    execution_key,
    parent_run,
    plan_fingerprint,
    resolved_config,
    to_millis,
    trial_key,
    trial_run,
)

HEADER = {
    "edd": {
        "id": "toy",
        "version": 2,
        "digest": "d" * 64,
        "document": {"protocol": {"baseline": {"features": {"a": True, "b": True}, "lr": 0.1}}},
    },
    "plan": {
        "design": "leave-one-out",
        "arms": [
            {"name": "baseline", "kind": "baseline", "overrides": []},
            {
                "name": "no-a",
                "kind": "component",
                "component": "a",
                "overrides": ["features.a=false", "+extra=3", "~lr"],
            },
        ],
        "seeds": [0, 1],
        "command": ["python", "train.py"],
        "trial_count": 4,
        "shard": "1/2",
    },
    "provenance": {"git": {"commit": "c" * 40}, "fingerprint": "f" * 64, "data": {"d.csv": "ab"}},
    "created_at": "2026-11-20T10:00:00Z",
    "budget": {"wall_seconds": 60.0},
    "approvals": [{"principal": "p@example.com", "role": "lead", "verdict": "valid"}],
}  # fmt: skip
TRIAL = {
    "trial_id": "no-a/1",
    "arm": "no-a",
    "seed": 1,
    "status": "succeeded",
    "metrics": {"score": 0.75, "loss": 0.5},
    "metric_history": {"loss": [{"step": 0, "value": 0.9}, {"step": 1, "value": 0.5}]},
    "started_at": "2026-11-20T10:01:00Z",
    "finished_at": "2026-11-20T10:02:00.500Z",
}


def test_keys_ignore_the_shard_but_not_the_plan_or_trial():
    other_shard = copy.deepcopy(HEADER)
    other_shard["plan"]["shard"] = None
    assert trial_key(HEADER, "no-a", 1) == trial_key(other_shard, "no-a", 1)
    assert execution_key(HEADER) == execution_key(other_shard)
    assert trial_key(HEADER, "no-a", 1) != trial_key(HEADER, "no-a", 2)
    assert trial_key(HEADER, "no-a", 1) != trial_key(HEADER, "baseline", 1)
    changed = copy.deepcopy(HEADER)
    changed["edd"]["digest"] = "e" * 64
    assert trial_key(changed, "no-a", 1) != trial_key(HEADER, "no-a", 1)


def test_a_header_changed_in_place_gets_a_new_fingerprint():
    # The fingerprint of the last header is reused: never for a header edited since.
    header = copy.deepcopy(HEADER)
    before = execution_key(header)
    assert execution_key(header) == before
    header["plan"]["seeds"].append(2)
    assert execution_key(header) != before
    header["plan"]["seeds"].pop()
    assert execution_key(header) == before
    header["provenance"]["fingerprint"] = "0" * 64
    assert execution_key(header) != before
    header["plan"]["arms"][1]["overrides"][0] = "features.a=true"
    assert plan_fingerprint(header) != plan_fingerprint(copy.deepcopy(HEADER))


def test_resolved_config_applies_the_arm_overrides():
    assert resolved_config(HEADER, TRIAL) == {
        "features.a": "false",
        "features.b": "true",
        "extra": "3",
    }
    assert resolved_config(HEADER, {**TRIAL, "config": {"x": {"y": [1, 2]}}}) == {"x.y": "[1, 2]"}


def test_trial_run_is_deterministic_and_complete():
    spec = trial_run(HEADER, TRIAL)
    assert spec is not None
    assert spec == trial_run(HEADER, copy.deepcopy(TRIAL))
    assert spec.start_time == to_millis("2026-11-20T10:01:00Z")
    assert spec.end_time == spec.start_time + 60_500
    assert spec.status == "FINISHED"
    assert spec.params["arm"] == "no-a"
    assert spec.params["seed"] == "1"
    assert spec.tags["mlflow.source.git.commit"] == "c" * 40
    assert spec.tags["mlaudit.arm.component"] == "a"
    assert spec.tags["mlaudit.trial_key"] == trial_key(HEADER, "no-a", 1)
    assert "mlaudit.trial.reason" not in spec.tags  # absent values are not logged as "None"
    assert spec.metrics == [
        MetricPoint("loss", 0.9, spec.end_time, 0),
        MetricPoint("loss", 0.5, spec.end_time, 1),
        MetricPoint("score", 0.75, spec.end_time, 0),
    ]


def test_trial_status_maps_and_not_run_is_skipped():
    assert trial_run(HEADER, {**TRIAL, "status": "timeout"}).status == "KILLED"
    assert trial_run(HEADER, {**TRIAL, "status": "failed"}).status == "FAILED"
    assert trial_run(HEADER, {**TRIAL, "status": "not_run"}) is None


def test_times_fall_back_to_the_results_record_not_the_clock():
    bare = {"arm": "baseline", "seed": 0, "status": "succeeded", "duration_seconds": 2.5}
    spec = trial_run(HEADER, bare)
    assert spec.start_time == to_millis("2026-11-20T10:00:00Z")
    assert spec.end_time == spec.start_time + 2500


def test_values_beyond_mlflow_limits_are_named():
    long = {**TRIAL, "config": {"blob": "x" * 6001}}
    with pytest.raises(
        InputError, match=r"trial no-a/1: param 'blob' is longer than MLflow's 6000"
    ):
        trial_run(HEADER, long)


def test_parent_run_carries_provenance_and_evidence():
    spec = parent_run(HEADER, analysis={"decision": "pass"})
    assert spec.tags["mlaudit.edd.id"] == "toy"
    assert spec.tags["mlaudit.dvc.d.csv"] == "ab"
    assert spec.tags["mlaudit.approvals"] == '[["p@example.com","lead","valid"]]'
    assert set(spec.artifacts) == {
        "edd/edd.json",
        "approvals/approvals.json",
        "results/results.json",
        "results/analysis.json",
    }
    assert spec.end_time == spec.start_time == to_millis("2026-11-20T10:00:00Z")
    # With results: from the first trial's start to the moment results were written.
    results = {**HEADER, "trials": [TRIAL], "created_at": "2026-11-20T10:05:00Z"}
    dated = parent_run(HEADER, results)
    assert dated.start_time == to_millis("2026-11-20T10:01:00Z")
    assert dated.end_time == to_millis("2026-11-20T10:05:00Z")
    # Opened by a running protocol's logger, before any results exist.
    opened = parent_run({**HEADER, "created_at": None}, first_trials=[TRIAL])
    assert opened.start_time == to_millis("2026-11-20T10:01:00Z")


@pytest.mark.parametrize("kind", ["rest", "mlflow"])
def test_batches_respect_mlflow_request_limits(kind):
    # Neither client connects before its first request.
    client = (RestTracking if kind == "rest" else connect)("http://127.0.0.1:9")
    spec = trial_run(HEADER, TRIAL)
    big = type(spec)(
        **{
            **spec.__dict__,
            "params": {f"p{i}": "v" for i in range(250)},
            "metrics": [MetricPoint("m", float(i), 0, i) for i in range(2500)],
        }
    )
    batches = list(_batches(big, {f"t{i}": "v" for i in range(150)}, client))
    for params, metrics, tags in batches:
        assert len(params) <= MAX_PARAMS_PER_BATCH
        assert len(tags) <= 100
        assert len(metrics) <= MAX_METRICS_PER_BATCH
        assert len(params) + len(metrics) + len(tags) <= MAX_ENTITIES_PER_BATCH
    assert sum(len(b[0]) for b in batches) == 250
    assert sum(len(b[1]) for b in batches) == 2500
    assert sum(len(b[2]) for b in batches) == 150
    assert len(batches) == 3  # as few requests as the limits allow


def test_a_bad_time_is_an_input_error_not_a_crash():
    with pytest.raises(InputError, match=r"'2026-13-40' is not an ISO 8601 time"):
        trial_run(HEADER, {**TRIAL, "started_at": "2026-13-40"})
