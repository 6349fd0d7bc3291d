"""Gate rules on a realistic study: each rule fails for its own reason, with evidence."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import rfc8785

from audit.designs import design_of
from audit.edd.model import Edd
from audit.gate import GateInputs, TrackingEvidence, decide

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "study" / "passing" / "results.json"


def _analysis_for(results: dict, results_sha256: str) -> dict:
    """A minimal analysis whose verdicts meet every claim of the EDD."""
    document = results["edd"]["document"]
    primary = document["metrics"]["primary"]["name"]
    comparisons = [
        {
            "target": c["target"],
            "metric": c.get("metric", primary),
            "verdict": c["claim"],
            "delta": {"value": 0.02, "method": "mean paired difference"},
        }
        for c in document["decision"]["claims"]
    ]
    return {
        "edd": {k: results["edd"][k] for k in ("id", "version", "digest")},
        "results_sha256": results_sha256,
        "comparisons": comparisons,
        "attrition": [],
        "decision": {"passed": True, "reasons": []},
    }


def _inputs(results: dict, **changes) -> GateInputs:
    raw = json.dumps(results).encode()
    digest = hashlib.sha256(raw).hexdigest()
    document = results["edd"]["document"]
    edd = Edd(Path("edd.yaml"), document, rfc8785.dumps(document))
    base = {
        "edd": edd,
        "verification_passed": True,
        "verification_reasons": (),
        "results": results,
        "results_sha256": digest,
        "analysis": _analysis_for(results, digest),
        "expected_plan": results["plan"],
    }
    base.update(changes)
    return GateInputs(**base)


@pytest.fixture
def results() -> dict:
    return json.loads(FIXTURE.read_text())


def _failed(decision) -> dict[str, str]:
    return {r.rule: r.evidence for r in decision.rules if not r.passed}


def test_a_clean_study_passes_every_rule(results):
    decision = decide(_inputs(results))
    assert _failed(decision) == {}
    assert decision.passed
    assert [r.rule for r in decision.rules] == [
        "edd-verified",
        "protocol-as-signed",
        "budget",
        "no-attrition",
        "provenance",
        "reproducible",
        "claims",
    ]


def test_unverified_approvals_fail(results):
    decision = decide(
        _inputs(results, verification_passed=False, verification_reasons=("quorum 2, got 1",))
    )
    assert "quorum 2, got 1" in _failed(decision)["edd-verified"]
    assert not decision.passed


def test_results_from_another_edd_fail(results):
    inputs = _inputs(results)
    other = copy.deepcopy(results)
    other["edd"]["digest"] = "0" * 64
    decision = decide(_inputs(other, edd=inputs.edd, analysis=inputs.analysis))
    assert "another EDD digest" in _failed(decision)["edd-verified"]


def test_analysis_of_other_results_fails(results):
    decision = decide(_inputs(results, results_sha256="f" * 64))
    assert "different results.json" in _failed(decision)["edd-verified"]


def test_missing_arm_fails(results):
    executed = copy.deepcopy(results)
    executed["plan"]["arms"] = executed["plan"]["arms"][:-1]
    decision = decide(_inputs(executed, expected_plan=results["plan"]))
    assert "missing ['production']" in _failed(decision)["protocol-as-signed"]


def _with_comparisons(results: dict) -> dict:
    recorded = copy.deepcopy(results)
    implied = design_of(results["edd"]["document"]["protocol"]).comparisons
    recorded["plan"]["comparisons"] = [c.to_dict() for c in implied]
    return recorded


def test_recorded_comparisons_as_signed_pass(results):
    assert "protocol-as-signed" not in _failed(decide(_inputs(_with_comparisons(results))))


def test_a_comparison_the_signed_design_does_not_imply_fails(results):
    # The signed design decides what is compared; results.json may only repeat it.
    executed = _with_comparisons(results)
    executed["plan"]["comparisons"][0]["comparator_arm"] = "production"
    evidence = _failed(decide(_inputs(executed)))["protocol-as-signed"]
    assert "plan.comparisons/0: comparison graph_features (component): baseline vs " in evidence
    assert "production is not one the signed design implies" in evidence
    assert "which is not recorded" in evidence


def test_changed_seeds_fail(results):
    executed = copy.deepcopy(results)
    executed["plan"]["seeds"] = executed["plan"]["seeds"][:-1]
    assert "seeds" in _failed(decide(_inputs(executed)))["protocol-as-signed"]


def test_missing_data_hash_fails(results):
    executed = copy.deepcopy(results)
    executed["provenance"]["data"] = {}
    assert "no recorded data hash" in _failed(decide(_inputs(executed)))["protocol-as-signed"]


def test_over_budget_fails(results):
    executed = copy.deepcopy(results)
    executed["budget"]["trials_run"] = results["edd"]["document"]["budget"]["max_trials"] + 1
    assert "trials run" in _failed(decide(_inputs(executed)))["budget"]


def test_failed_trials_beyond_policy_fail(results):
    executed = copy.deepcopy(results)
    allowed = executed["edd"]["document"]["decision"].get("allowed_failed_trials", 0)
    for trial in executed["trials"][: allowed + 1]:
        trial["status"] = "failed"
    assert "did not succeed" in _failed(decide(_inputs(executed)))["no-attrition"]


def test_dirty_tree_fails(results):
    executed = copy.deepcopy(results)
    executed["provenance"]["git"]["dirty"] = True
    assert "dirty" in _failed(decide(_inputs(executed)))["provenance"]


def test_confound_fails(results):
    decision = decide(_inputs(results, plan_error="confound: arm no-x also changes model.depth"))
    assert "confound" in _failed(decision)["provenance"]


def test_reproducibility_outside_tolerance_fails(results):
    executed = copy.deepcopy(results)
    executed["reproducibility"]["passed"] = False
    executed["reproducibility"]["reason"] = "pr_auc differs by 0.01"
    assert "pr_auc differs" in _failed(decide(_inputs(executed)))["reproducible"]


def test_missing_reproducibility_fails(results):
    executed = copy.deepcopy(results)
    executed["reproducibility"] = None
    assert "no reproducibility" in _failed(decide(_inputs(executed)))["reproducible"]


def test_unmet_claim_fails(results):
    inputs = _inputs(results)
    analysis = copy.deepcopy(inputs.analysis)
    analysis["comparisons"][0]["verdict"] = "not-shown"
    evidence = _failed(decide(_inputs(results, analysis=analysis)))["claims"]
    assert "claimed improves, verdict not-shown" in evidence


def test_hand_edited_analysis_is_caught_by_recomputation(results):
    inputs = _inputs(results)
    recomputed = copy.deepcopy(inputs.analysis)
    recomputed["comparisons"][0]["verdict"] = "not-shown"
    recomputed["decision"]["passed"] = False
    evidence = _failed(decide(_inputs(results, recomputed_analysis=recomputed)))["claims"]
    assert "recomputed" in evidence


def test_tracking_rule_runs_only_with_a_tracking_uri(results):
    sealed = TrackingEvidence("http://127.0.0.1:5000", (), True)
    assert decide(_inputs(results, tracking=sealed)).rules[-1].rule == "tracking-sealed"
    broken = TrackingEvidence("http://127.0.0.1:5000", ("baseline/0",), False, ("seq 3 missing",))
    evidence = _failed(decide(_inputs(results, tracking=broken)))["tracking-sealed"]
    assert "baseline/0" in evidence
    assert "seq 3 missing" in evidence


def test_a_removed_comparison_and_a_flipped_verdict_are_named(results):
    inputs = _inputs(results)
    recomputed = copy.deepcopy(inputs.analysis)
    edited = copy.deepcopy(inputs.analysis)
    removed = edited["comparisons"].pop()
    edited["comparisons"][0]["verdict"] = "not-shown"
    evidence = _failed(decide(_inputs(results, analysis=edited, recomputed_analysis=recomputed)))[
        "claims"
    ]
    first = edited["comparisons"][0]
    assert f"analysis.json /comparisons/0/verdict for {first['target']}" in evidence
    assert f"lacks the comparison {removed['target']} on {removed['metric']}" in evidence


def test_differences_from_the_sealed_runs_fail_the_tracking_rule(results):
    edited = TrackingEvidence(
        "http://127.0.0.1:5000",
        (),
        True,
        differences=("trial no-a/3: metrics.score: results.json has 0.6, the sealed run has 0.7",),
    )
    evidence = _failed(decide(_inputs(results, tracking=edited)))["tracking-sealed"]
    assert "trial no-a/3: metrics.score" in evidence


def test_the_gate_result_follows_its_schema_and_reads_back(results, tmp_path):
    from audit.documents import read_gate_result, write_document

    broken = TrackingEvidence("http://127.0.0.1:5000", ("baseline/0",), False, ("seq 3",))
    result = decide(_inputs(results, tracking=broken))
    path = tmp_path / "gate.json"
    write_document(path, result.to_dict(), schema="gate")  # refuses a schema violation
    again = read_gate_result(path)
    assert again.to_dict() == result.to_dict()
    assert set(result.to_dict()) == {
        "schema",
        "passed",
        "rules",
        "reasons",
        "edd",
        "results_sha256",
    }
