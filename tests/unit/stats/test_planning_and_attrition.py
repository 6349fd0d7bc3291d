"""Planning warnings (edd validate, ablate plan) and metric-level attrition in the gate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
import yaml

from audit.edd.model import Edd
from audit.edd.semantics import planning_warnings, semantic_problems
from audit.gate import GateInputs, rule_no_attrition
from audit.stats import analyze_results
from audit.stats.power import sample_size_hint, t_power

REPO = Path(__file__).resolve().parents[3]
FRAUD_EDD = REPO / "examples" / "fraud" / "edd.yaml"
PASSING = REPO / "tests" / "fixtures" / "study" / "passing" / "results.json"


def fraud_document(**claim_fields: float) -> dict:
    document = yaml.safe_load(FRAUD_EDD.read_text())
    # device-graph: improves by min_effect 0.02 with 8 seeds
    document["decision"]["claims"][0].update(claim_fields)
    return document


def test_too_few_seeds_for_the_planning_effect_warn_with_the_seeds_needed():
    document = fraud_document(planning_effect=0.03, pilot_sd=0.02)
    ((pointer, message),) = planning_warnings(document)
    assert pointer == "/decision/claims/0"
    power = t_power(8, 0.01, 0.02, 0.05)
    needed = sample_size_hint(0.02, 0.01, 0.05, two_sided=False).seeds_needed
    assert power < 0.8
    assert message == (
        f"8 seeds give {power:.0%} power at planning_effect 0.03 (pilot_sd 0.02, one-sided "
        f"t-test at alpha 0.05); {needed} seeds give 80%"
    )
    assert semantic_problems(document) == []


def test_enough_seeds_do_not_warn():
    assert planning_warnings(fraud_document(planning_effect=0.05, pilot_sd=0.01)) == []
    assert planning_warnings(fraud_document()) == []


def test_a_planning_effect_without_pilot_sd_is_noted():
    ((_, message),) = planning_warnings(fraud_document(planning_effect=0.03))
    assert "without pilot_sd" in message


def test_a_planning_effect_at_the_boundary_is_a_problem():
    problems = semantic_problems(fraud_document(planning_effect=0.02, pilot_sd=0.01))
    assert problems == [
        (
            "/decision/claims/0/planning_effect",
            "planning_effect 0.02 must exceed the claim boundary (min_effect = 0.02): at "
            "the boundary no number of seeds gives power",
        )
    ]


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "edd.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_edd_validate_prints_the_warning_and_still_passes(run_cli, tmp_path):
    path = _write(tmp_path, fraud_document(planning_effect=0.03, pilot_sd=0.02))
    result = run_cli("edd", "validate", path)
    assert result.exit_code == 0, result.stderr
    assert "warning:" in result.stderr
    assert "/decision/claims/0: 8 seeds give" in result.stderr
    as_json = run_cli("edd", "validate", path, "--json")
    assert json.loads(as_json.stdout)["warnings"][0]["pointer"] == "/decision/claims/0"


def test_ablate_plan_prints_the_warning(run_cli, tmp_path):
    path = _write(tmp_path, fraud_document(planning_effect=0.03, pilot_sd=0.02))
    result = run_cli("ablate", "plan", path)
    assert result.exit_code == 0, result.stderr
    assert "8 seeds give" in result.stderr
    plan = json.loads(run_cli("ablate", "plan", path, "--json").stdout)
    assert plan["warnings"][0]["message"].startswith("8 seeds give")


def _gate_inputs(results: dict) -> GateInputs:
    raw = json.dumps(results).encode()
    digest = hashlib.sha256(raw).hexdigest()
    document = results["edd"]["document"]
    return GateInputs(
        edd=Edd(Path("edd.yaml"), document, rfc8785.dumps(document)),
        verification_passed=True,
        verification_reasons=(),
        results=results,
        results_sha256=digest,
        analysis=analyze_results(json.loads(raw), results_sha256=digest),
        expected_plan=results["plan"],
    )


def test_a_missing_metric_in_a_succeeded_trial_fails_no_attrition():
    results = json.loads(PASSING.read_text())
    assert rule_no_attrition(_gate_inputs(results)).passed
    # A metric no claim uses: before statistics v2 this passed (no trial failed).
    trial = next(t for t in results["trials"] if t["arm"] == "production" and t["seed"] == 2)
    del trial["metrics"]["recall_at_1pct_fpr"]
    result = rule_no_attrition(_gate_inputs(results))
    assert not result.passed
    assert result.evidence == (
        "1 metric value(s) missing or not finite in succeeded trials: "
        "production/2 recall_at_1pct_fpr; attempts: 40 trial(s) x 1"
    )


@pytest.mark.parametrize("allowed", [0, 1])
def test_failed_trials_within_the_allowance_still_pass(allowed):
    results = json.loads(PASSING.read_text())
    results["edd"]["document"]["decision"]["allowed_failed_trials"] = allowed
    results["edd"]["digest"] = hashlib.sha256(rfc8785.dumps(results["edd"]["document"])).hexdigest()
    trial = next(t for t in results["trials"] if t["arm"] == "production" and t["seed"] == 2)
    trial.update(status="failed", metrics={}, reason="killed")
    assert rule_no_attrition(_gate_inputs(results)).passed is (allowed == 1)
