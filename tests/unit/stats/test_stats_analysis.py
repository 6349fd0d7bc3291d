"""analyze_results on the synthetic study fixtures (tests/fixtures/study) and on broken input."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import rfc8785

from audit._resources import load_schema
from audit.errors import InputError, ValidationFailed
from audit.stats import analyze_results

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"
VARIANTS = [".", "underpowered", "passing", "add-one", "factorial"]


def load(variant: str = ".") -> dict:
    return json.loads((STUDY / variant / "results.json").read_text())


def reseal(results: dict) -> dict:
    """After editing the embedded EDD, recompute its digest as the protocol engine would."""
    results["edd"]["digest"] = hashlib.sha256(rfc8785.dumps(results["edd"]["document"])).hexdigest()
    return results


def by_target(analysis: dict, metric: str = "pr_auc") -> dict[str, dict]:
    return {c["target"]: c for c in analysis["comparisons"] if c["metric"] == metric}


@pytest.fixture(scope="module")
def main_analysis() -> dict:
    return analyze_results(load(), results_sha256="0" * 64)


def test_every_fixture_analysis_is_valid_and_current():
    schema = load_schema("analysis")
    for variant in VARIANTS:
        raw = (STUDY / variant / "results.json").read_bytes()
        analysis = analyze_results(json.loads(raw), results_sha256=hashlib.sha256(raw).hexdigest())
        jsonschema.Draft202012Validator(schema).validate(analysis)
        committed = json.loads((STUDY / variant / "analysis.json").read_text())
        # The committed analysis.json is what the report is built against: keep it current
        # (regenerate with tests/fixtures/study/make_fixtures.py).
        committed["method"]["software"] = analysis["method"]["software"]
        assert committed == json.loads(json.dumps(analysis)), variant


def test_main_study_verdicts(main_analysis):
    verdicts = {(c["target"], c["metric"]): c["verdict"] for c in main_analysis["comparisons"]}
    assert verdicts[("graph_features", "pr_auc")] == "improves"
    assert verdicts[("calibration", "pr_auc")] == "non-inferior"
    assert verdicts[("calibration", "expected_cost")] == "non-inferior"
    assert verdicts[("velocity_window", "pr_auc")] == "not-shown"
    assert verdicts[("merchant_embeddings", "pr_auc")] == "attrition"
    assert verdicts[("production", "pr_auc")] == "improves"
    assert verdicts[("graph_features", "recall_at_1pct_fpr")] == "no-claim"
    assert not main_analysis["decision"]["passed"]
    assert main_analysis["decision"]["summary"] == "failed: 4 of 6 claims supported"


def test_pairing_direction_and_arms(main_analysis):
    comparisons = by_target(main_analysis)
    graph = comparisons["graph_features"]
    assert (graph["candidate_arm"], graph["comparator_arm"]) == ("baseline", "no-graph_features")
    assert graph["delta"]["value"] > 0.02
    production = comparisons["production"]
    assert (production["candidate_arm"], production["comparator_arm"]) == ("baseline", "production")
    assert production["kind"] == "reference"
    cost = {c["target"]: c for c in main_analysis["comparisons"] if c["metric"] == "expected_cost"}
    assert cost["graph_features"]["goal"] == "minimize"
    assert cost["graph_features"]["delta"]["value"] < 0


def test_attrition_is_listed_and_paired_seeds_dropped(main_analysis):
    assert main_analysis["attrition"] == [
        {
            "arm": "no-merchant_embeddings",
            "seed": 7,
            "reason": "trial failed: killed by the kernel (out of memory) on both attempts",
            "status": "failed",
        }
    ]
    merchant = by_target(main_analysis)["merchant_embeddings"]
    assert merchant["n"] == 9
    assert 7 not in merchant["seeds"]
    assert main_analysis["failed_trials"] == {"count": 1, "allowed": 1}


def test_numbers_carry_their_method(main_analysis):
    graph = by_target(main_analysis)["graph_features"]
    assert graph["ci"]["method"] == "student-t"
    assert graph["p_value"]["method"] == "exact sign-flip permutation"
    assert graph["p_value"]["null"] == "delta = 0"
    assert graph["p_adjusted"]["method"] == "holm"
    calibration = by_target(main_analysis)["calibration"]
    assert calibration["p_value"]["alternative"] == "greater"
    assert calibration["p_value"]["null"] == "delta (good direction) <= -0.01"
    assert main_analysis["method"]["family"]["size"] == 6
    assert main_analysis["method"]["seed"] == 20211


def test_manual_recomputation_of_one_comparison(main_analysis):
    results = load()
    values = {
        (t["arm"], t["seed"]): t["metrics"] for t in results["trials"] if t["status"] == "succeeded"
    }
    d = np.array(
        [
            values[("baseline", s)]["pr_auc"] - values[("no-graph_features", s)]["pr_auc"]
            for s in range(10)
        ]
    )
    graph = by_target(main_analysis)["graph_features"]
    assert graph["delta"]["value"] == pytest.approx(d.mean(), abs=1e-12)
    assert graph["effect_size"]["value"] == pytest.approx(d.mean() / d.std(ddof=1), abs=1e-9)
    # All ten differences positive: the exact two-sided p is 2/1024, Holm over 6 claims.
    assert graph["p_value"]["value"] == pytest.approx(2 / 1024)
    assert graph["p_adjusted"]["value"] <= 6 * 2 / 1024


def test_underpowered_study_cannot_pass():
    analysis = analyze_results(load("underpowered"))
    claimed = [c for c in analysis["comparisons"] if c["claim"]]
    assert {c["verdict"] for c in claimed} == {"underpowered"}
    floor = claimed[0]["seed_floor"]
    assert floor["reachable"] is False
    assert floor["seeds_needed"] == 8  # 2/2^n < 0.05/6 first at n = 8
    for c in claimed:
        # The hint never asks for fewer seeds than the test's own floor.
        assert c["sample_size_hint"]["seeds_needed"] >= c["seed_floor"]["seeds_needed"]
    assert not analysis["decision"]["passed"]
    assert analysis["results_sha256_of"].startswith("RFC 8785")


def test_passing_study_passes():
    analysis = analyze_results(load("passing"))
    assert analysis["decision"]["passed"]
    assert all(c["supported"] for c in analysis["decision"]["claims"])


def test_add_one_pairs_with_the_base_arm():
    graph = by_target(analyze_results(load("add-one")))["graph_features"]
    assert (graph["candidate_arm"], graph["comparator_arm"]) == ("with-graph_features", "base")


def test_factorial_effects_find_the_planted_interaction():
    analysis = analyze_results(load("factorial"))
    # The engine's all-on cell is kind "baseline"; it is a cell all the same.
    assert len(analysis["factorial"]["cells"]) == 8
    assert "baseline" in {c["arm"] for c in analysis["factorial"]["cells"]}
    effects = {(e["effect"], e["metric"]): e for e in analysis["factorial"]["effects"]}
    # make_fixtures plants +0.006 pr_auc when graph_features and calibration are both on:
    # in +/-1 coding that is an interaction effect of 0.003.
    interaction = effects[("calibration:graph_features", "pr_auc")]
    assert interaction["estimate"]["value"] == pytest.approx(0.003, abs=0.0015)
    assert interaction["p_adjusted"]["value"] < 0.05
    assert interaction["p_adjusted"]["method"].startswith("benjamini-hochberg")
    null_interaction = effects[("graph_features:velocity_window", "pr_auc")]
    assert null_interaction["p_adjusted"]["value"] > 0.05
    graph = by_target(analysis)["graph_features"]
    assert graph["candidate_arm"] == next(
        a["name"]
        for a in load("factorial")["plan"]["arms"]
        if a.get("factors") and all(a["factors"].values())
    )


def test_same_seed_same_analysis_and_seed_is_recorded():
    results = load()
    # Force the bootstrap and Monte Carlo paths with a 25-seed variant of the study.
    first = analyze_results(results, seed=5, resamples=999)
    second = analyze_results(copy.deepcopy(results), seed=5, resamples=999)
    assert first == second
    assert first["method"]["seed"] == 5


def _grow_seeds(results: dict, n: int) -> dict:
    """The main study with n seeds: extra seeds copy old ones with a small jitter."""
    rng = np.random.default_rng(0)
    old = results["plan"]["seeds"]
    extra = []
    for trial in results["trials"]:
        for seed in range(len(old), n):
            if trial["seed"] == seed % len(old):
                clone = copy.deepcopy(trial)
                clone["seed"] = seed
                clone["trial_id"] = f"{clone['arm']}/{seed}"
                clone["metrics"] = {
                    k: v + float(rng.normal(0, 1e-3)) for k, v in clone["metrics"].items()
                }
                extra.append(clone)
    results["trials"].extend(extra)
    results["plan"]["seeds"] = list(range(n))
    results["edd"]["document"]["protocol"]["seeds"] = list(range(n))
    return reseal(results)


def test_large_studies_use_bca_and_monte_carlo_with_recorded_seed():
    analysis = analyze_results(_grow_seeds(load("passing"), 25), seed=11, resamples=999)
    graph = by_target(analysis)["graph_features"]
    assert graph["n"] == 25
    assert graph["ci"]["method"] == "bca-bootstrap"
    assert graph["ci"]["resamples"] == 999
    assert graph["ci"]["seed"] == 11
    assert graph["p_value"]["method"] == "Monte Carlo sign-flip permutation"
    assert graph["p_value"]["seed"] == 11
    assert graph["p_value"]["resamples"] == 999
    assert graph["verdict"] == "improves"


# -- invalid input --------------------------------------------------------------------


def test_schema_errors_carry_pointers():
    results = load()
    results["trials"][3]["status"] = "exploded"
    with pytest.raises(ValidationFailed) as caught:
        analyze_results(results, source="r.json")
    assert caught.value.problems[0][0] == "/trials/3/status"
    assert caught.value.user_message().startswith("r.json:/trials/3/status:")


def test_invalid_embedded_edd_is_reported_under_its_pointer():
    results = load()
    del results["edd"]["document"]["metrics"]
    with pytest.raises(ValidationFailed) as caught:
        analyze_results(results)
    assert caught.value.problems[0][0] == "/edd/document"


def test_tampered_edd_document_is_refused():
    results = load()
    results["edd"]["document"]["decision"]["alpha"] = 0.5
    with pytest.raises(InputError, match=r"does not match edd\.digest"):
        analyze_results(results)


def test_claim_on_an_unknown_target_is_refused():
    results = load()
    results["edd"]["document"]["decision"]["claims"].append(
        {"target": "ghost", "claim": "improves"}
    )
    with pytest.raises(InputError, match="'ghost' has no arm") as caught:
        analyze_results(reseal(results))
    assert caught.value.location is not None
    assert caught.value.location.pointer == "/edd/document/decision/claims/6"


def test_duplicate_and_stray_trials_are_refused():
    results = load()
    results["trials"].append(copy.deepcopy(results["trials"][0]))
    with pytest.raises(InputError, match="duplicate trial"):
        analyze_results(results)
    results = load()
    results["trials"][0]["arm"] = "no-such-arm"
    with pytest.raises(InputError, match=r"not in plan\.arms"):
        analyze_results(results)


def test_too_many_failures_fail_the_decision_even_for_unclaimed_arms():
    results = load("passing")
    for trial in results["trials"]:
        if trial["arm"] == "production" and trial["seed"] in (1, 2):
            trial.update(status="timeout", metrics={}, reason="timed out after 900 s")
    analysis = analyze_results(results)
    assert analysis["failed_trials"] == {"count": 2, "allowed": 1}
    assert not analysis["decision"]["passed"]
    assert any("allowed_failed_trials=1" in r for r in analysis["decision"]["reasons"])


def test_missing_metric_in_a_succeeded_trial_is_attrition():
    results = load("passing")
    trial = next(t for t in results["trials"] if t["arm"] == "no-graph_features" and t["seed"] == 4)
    del trial["metrics"]["pr_auc"]
    analysis = analyze_results(results)
    graph = by_target(analysis)["graph_features"]
    assert graph["verdict"] == "attrition"
    assert graph["evidence_verdict"] == "improves"
    assert {
        "arm": "no-graph_features",
        "seed": 4,
        "metric": "pr_auc",
        "status": "succeeded",
        "reason": "metric 'pr_auc' missing",
    } in analysis["attrition"]


def test_replace_one_pairs_baseline_with_the_replaced_arm():
    results = load("passing")
    results["plan"]["design"] = "replace-one"
    results["edd"]["document"]["protocol"]["design"] = "replace-one"
    renames = {"no-graph_features": "replace-graph_features", "no-calibration": "swap-calibration"}
    for arm in results["plan"]["arms"]:
        arm["name"] = renames.get(arm["name"], arm["name"])
    for trial in results["trials"]:
        trial["arm"] = renames.get(trial["arm"], trial["arm"])
    analysis = analyze_results(reseal(results))
    comparisons = by_target(analysis)
    assert comparisons["graph_features"]["comparator_arm"] == "replace-graph_features"
    # Arms are found by kind/component, not by the naming convention.
    assert comparisons["calibration"]["comparator_arm"] == "swap-calibration"
    assert comparisons["calibration"]["candidate_arm"] == "baseline"


def test_an_arm_that_never_succeeded_is_attrition_not_a_crash():
    results = load("passing")
    for trial in results["trials"]:
        if trial["arm"] == "no-graph_features":
            trial.update(status="failed", metrics={}, reason="import error")
    analysis = analyze_results(results)
    graph = by_target(analysis)["graph_features"]
    assert graph["n"] == 0
    assert graph["verdict"] == "attrition"
    assert graph["delta"]["value"] is None
    assert graph["ci"]["low"] is None
    assert not analysis["decision"]["passed"]
    jsonschema.Draft202012Validator(load_schema("analysis")).validate(analysis)


def test_an_uncollected_shard_is_refused():
    results = load()
    results["plan"]["shard"] = "1/4"
    with pytest.raises(InputError, match="collect the shards first"):
        analyze_results(results)
