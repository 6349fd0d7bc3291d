"""results.json against its sealed runs: every trial, every field, and no sealed trial left out."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from audit.documents import parse_results
from audit.tracking.runspec import TRIAL_KEY_TAG, trial_run
from audit.tracking.sealed import compare_with_sealed, sealed_document

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "study" / "passing" / "results.json"


def _record(header: dict, trial: dict, run_id: str) -> dict:
    """The sealed record MLflow keeps for a trial logged from `trial` (runspec -> record)."""
    spec = trial_run(header, trial)
    assert spec is not None
    metrics: dict[str, list[list[float]]] = {}
    for point in spec.metrics:
        metrics.setdefault(point.key, []).append([point.step, point.timestamp, point.value])
    return {"run_id": run_id, "status": spec.status, "tags": spec.tags, "metrics": metrics}


@pytest.fixture
def document() -> dict:
    return json.loads(FIXTURE.read_text())


def _sealed(document: dict) -> dict[str, dict]:
    header = {k: v for k, v in document.items() if k != "trials"}
    records = {}
    for index, trial in enumerate(document["trials"]):
        if trial["status"] != "not_run":
            run_id = trial.get("mlflow_run_id") or f"run{index:04d}"
            records[run_id] = _record(header, trial, run_id)
    return records


def _results(document: dict):
    return parse_results(json.dumps(document).encode(), "results.json")


def test_untouched_results_equal_their_sealed_runs(document):
    comparison = compare_with_sealed(_results(document), _sealed(document))
    assert comparison.differences == ()
    assert comparison.unsealed == ()


def test_an_edited_metric_is_named_by_trial_field_and_pointer(document):
    records = _sealed(document)
    edited = copy.deepcopy(document)
    trial = edited["trials"][2]
    name = sorted(trial["metrics"])[0]
    trial["metrics"][name] -= 0.1
    (difference,) = compare_with_sealed(_results(edited), records).differences
    assert difference.trial == trial["trial_id"]
    assert difference.field == f"metrics.{name}"
    assert difference.pointer == f"/trials/2/metrics/{name}"
    # and the values the gate recomputes from are the sealed ones
    assert sealed_document(_results(edited), records)["trials"][2] == document["trials"][2]


@pytest.mark.parametrize(
    ("field", "value"),
    [("status", "failed"), ("fingerprint", "f" * 64)],
)
def test_an_edited_status_or_fingerprint_is_named(document, field, value):
    records = _sealed(document)
    edited = copy.deepcopy(document)
    edited["trials"][0][field] = value
    fields = [d.field for d in compare_with_sealed(_results(edited), records).differences]
    assert field in fields


def test_a_sealed_trial_left_out_of_results_is_named(document):
    records = _sealed(document)
    edited = copy.deepcopy(document)
    dropped = edited["trials"].pop(1)
    (difference,) = compare_with_sealed(_results(edited), records).differences
    assert difference.trial == dropped["trial_id"]
    assert difference.field == "trial"
    assert "missing from results.json" in difference.message


def test_a_trial_without_a_sealed_run_is_unsealed(document):
    records = _sealed(document)
    first = document["trials"][0].get("mlflow_run_id") or "run0000"
    key = records[first]["tags"][TRIAL_KEY_TAG]
    del records[first]
    comparison = compare_with_sealed(_results(document), records)
    assert comparison.unsealed == (document["trials"][0]["trial_id"],)
    assert key not in {r["tags"][TRIAL_KEY_TAG] for r in records.values()}
