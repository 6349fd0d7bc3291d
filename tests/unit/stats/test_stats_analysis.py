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
from scipy import stats as sps

from audit._resources import load_schema
from audit.errors import InputError, ValidationFailed
from audit.stats import analyze_results
from audit.stats.power import t_power

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
    assert graph["p_value"]["method"] == "one-sided paired t-test against the claim boundary"
    assert graph["p_value"]["null"] == "effect (good direction) <= 0.01"
    assert graph["p_value"]["alternative"] == "greater"
    assert graph["claim_bound"]["level"] == pytest.approx(0.95)
    assert graph["claim_bound"]["boundary"] == 0.01
    assert graph["p_adjusted"]["method"] == "holm"
    calibration = by_target(main_analysis)["calibration"]
    assert calibration["p_value"]["null"] == "effect (good direction) <= -0.01"
    assert main_analysis["method"]["family"]["size"] == 6
    assert main_analysis["method"]["seed"] == 20211
    unclaimed = next(c for c in main_analysis["comparisons"] if c["claim"] is None)
    assert unclaimed["p_value"]["alternative"] == "two-sided"
    assert unclaimed["claim_bound"] is None


def test_the_rule_version_is_recorded(main_analysis):
    rule = main_analysis["decision_rule"]
    assert rule["version"] == 2
    assert rule["name"] == "mlaudit-claims/2"
    assert "H0: effect <= min_effect vs H1: effect > min_effect" in rule["improves"]
    assert "H0: effect <= -margin vs H1: effect > -margin" in rule["non_inferior"]
    assert "Berger 1982" in rule["decision"]


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
    # The claim test is scipy's one-sided one-sample t-test of d against min_effect.
    expected = sps.ttest_1samp(d, 0.01, alternative="greater")
    assert graph["p_value"]["value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert graph["p_value"]["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    low = expected.confidence_interval(0.95).low  # one-sided: (low, inf)
    assert graph["claim_bound"]["value"] == pytest.approx(low, rel=1e-9)
    two_sided = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert graph["ci"]["low"] == pytest.approx(two_sided.low, rel=1e-9)
    assert graph["ci"]["high"] == pytest.approx(two_sided.high, rel=1e-9)


def test_minimize_metrics_are_tested_in_their_good_direction(main_analysis):
    results = load()
    values = {
        (t["arm"], t["seed"]): t["metrics"] for t in results["trials"] if t["status"] == "succeeded"
    }
    d = np.array(
        [
            values[("baseline", s)]["expected_cost"]
            - values[("no-calibration", s)]["expected_cost"]
            for s in range(10)
        ]
    )
    comparison = next(
        c
        for c in main_analysis["comparisons"]
        if c["target"] == "calibration" and c["metric"] == "expected_cost"
    )
    # non-inferior within 25 cost units: H0 -delta <= -25.
    expected = sps.ttest_1samp(-d, -25.0, alternative="greater")
    assert comparison["p_value"]["value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert comparison["verdict"] == "non-inferior"


def test_five_seeds_give_a_hint_for_the_planning_effect():
    analysis = analyze_results(load("underpowered"))
    merchant = by_target(analysis)["merchant_embeddings"]
    hint = merchant["sample_size_hint"]
    # No planning_effect in this EDD: improves plans for 2 x min_effect.
    assert hint["basis"].startswith("2 x min_effect")
    assert hint["planning_effect"] == pytest.approx(0.01)
    assert hint["boundary"] == pytest.approx(0.005)
    assert hint["n"] == 5
    assert hint["seeds_needed"] > 5
    assert hint["power_at_n"] < 0.8
    assert merchant["seed_floor"]["reachable"] is True
    assert not analysis["decision"]["passed"]
    assert analysis["results_sha256_of"].startswith("RFC 8785")


def test_a_declared_planning_effect_and_the_hint_power():
    results = load()
    claim = results["edd"]["document"]["decision"]["claims"][0]
    claim["planning_effect"] = 0.015
    analysis = analyze_results(reseal(results))
    graph = by_target(analysis)["graph_features"]
    hint = graph["sample_size_hint"]
    assert hint["basis"] == "planning_effect (EDD)"
    d_good = graph["sd_delta"]
    needed = hint["seeds_needed"]
    # The hinted n gives 80% power for the claim test at the planning effect; one fewer not.
    assert t_power(needed, 0.015 - 0.01, d_good, 0.05) >= 0.8
    if needed > 2:
        assert t_power(needed - 1, 0.015 - 0.01, d_good, 0.05) < 0.8
    assert graph["claim"]["planning_effect"] == 0.015


def test_intersection_union_and_the_family_are_both_reported(main_analysis):
    claimed = [c for c in main_analysis["comparisons"] if c["claim"]]
    for c in claimed:
        assert c["family"]["correction"] == "holm"
        assert c["family"]["p_adjusted"] == c["p_adjusted"]["value"]
        assert c["family"]["p_adjusted"] >= c["p_value"]["value"]


def test_a_claim_can_hold_at_alpha_and_fail_as_a_family_member():
    results = load("passing")
    pr_auc = {(t["arm"], t["seed"]): t["metrics"]["pr_auc"] for t in results["trials"]}
    d = np.array([pr_auc[("baseline", s)] - pr_auc[("production", s)] for s in range(10)])
    # Move the production arm so the claim's t statistic is 2.0 (p ~ 0.038 at df 9):
    # below alpha, above Bonferroni's alpha/3 for the three claims of this study.
    results["edd"]["document"]["decision"]["correction"] = "bonferroni"
    reseal(results)
    shift = d.mean() - (0.005 + 2.0 * d.std(ddof=1) / np.sqrt(10))
    for trial in results["trials"]:
        if trial["arm"] == "production":
            trial["metrics"]["pr_auc"] += shift
    analysis = analyze_results(results)
    production = by_target(analysis)["production"]
    assert 0.05 / 3 < production["p_value"]["value"] < 0.05
    assert production["verdict"] == "improves"
    assert production["family"]["supported"] is False
    assert production["family"]["correction"] == "bonferroni"
    assert analysis["decision"]["passed"]


def test_identical_differences_block_a_positive_verdict():
    results = load("passing")
    base = {t["seed"]: t["metrics"]["pr_auc"] for t in results["trials"] if t["arm"] == "baseline"}
    for trial in results["trials"]:
        if trial["arm"] == "no-graph_features":
            trial["metrics"]["pr_auc"] = base[trial["seed"]] - 0.25
    analysis = analyze_results(results)
    graph = by_target(analysis)["graph_features"]
    assert graph["evidence_verdict"] == "improves"
    assert graph["verdict"] == "not-shown"
    assert graph["diagnostics"]["degenerate"] is True
    assert "seed never reaches training" in graph["diagnostics"]["warning"]
    assert any("seed never reaches training" in r for r in graph["reasons"])
    assert not analysis["decision"]["passed"]


def test_a_seed_that_collapses_raises_the_skew_warning():
    results = load("passing")
    trial = next(t for t in results["trials"] if t["arm"] == "baseline" and t["seed"] == 3)
    trial["metrics"]["pr_auc"] -= 0.2
    analysis = analyze_results(results)
    graph = by_target(analysis)["graph_features"]
    shape = graph["diagnostics"]
    assert shape["flagged"] is True
    assert shape["skewness"] < -1.5
    assert shape["outlier_seeds"] == [3]
    assert "skewed to the left" in shape["warning"]
    untouched = [c for c in analysis["comparisons"] if c["metric"] == "expected_cost"]
    assert all(not c["diagnostics"]["flagged"] for c in untouched)


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


def test_large_studies_use_the_t_interval_too():
    analysis = analyze_results(_grow_seeds(load("passing"), 25), seed=11, resamples=999)
    graph = by_target(analysis)["graph_features"]
    assert graph["n"] == 25
    # Chosen by measured coverage: BCa under-covers at n = 20-30 (docs/methods.md).
    assert graph["ci"]["method"] == "student-t"
    assert graph["p_value"]["df"] == 24
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


def _as_replace_one(results: dict, renames: dict[str, str]) -> dict:
    results["plan"]["design"] = "replace-one"
    results["edd"]["document"]["protocol"]["design"] = "replace-one"
    for arm in results["plan"]["arms"]:
        arm["name"] = renames.get(arm["name"], arm["name"])
    for trial in results["trials"]:
        trial["arm"] = renames.get(trial["arm"], trial["arm"])
    return reseal(results)


def test_replace_one_pairs_baseline_with_the_replaced_arm():
    renames = {
        "no-graph_features": "replace-graph_features",
        "no-calibration": "replace-calibration",
    }
    analysis = analyze_results(_as_replace_one(load("passing"), renames))
    comparisons = by_target(analysis)
    assert comparisons["graph_features"]["comparator_arm"] == "replace-graph_features"
    assert comparisons["calibration"]["comparator_arm"] == "replace-calibration"
    assert comparisons["calibration"]["candidate_arm"] == "baseline"


def test_a_plan_whose_arms_are_not_the_signed_designs_is_refused():
    # The signed design names the arms (audit/designs.py): an arm the plan calls otherwise
    # is not silently matched by its kind, the analysis says which arm is missing.
    renames = {"no-graph_features": "replace-graph_features", "no-calibration": "swap-calibration"}
    with pytest.raises(InputError, match="needs arm 'replace-calibration'") as caught:
        analyze_results(_as_replace_one(load("passing"), renames))
    assert caught.value.location is not None
    assert caught.value.location.pointer == "/plan/arms"


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


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_gates_cheap_recomputation_carries_every_decision_number(variant):
    """descriptive=False (what the gate recomputes) differs only in what nothing decides on."""
    full = analyze_results(load(variant), resamples=199)
    core = analyze_results(load(variant), resamples=199, descriptive=False)
    assert core["decision"] == full["decision"]
    assert core["factorial"] is None
    for mine, theirs in zip(core["comparisons"], full["comparisons"], strict=True):
        assert mine["wilcoxon"] is None
        assert mine["sample_size_hint"] is None
        blanked = {**theirs, "wilcoxon": None, "sample_size_hint": None}
        assert mine == blanked


def test_the_cheap_recomputation_never_imports_scipy_stats():
    """scipy.stats is most of a cold `mlaudit gate`; the t distribution comes from special."""
    import subprocess
    import sys

    code = (
        "import json, sys; from audit.stats import analyze_results; "
        f"analyze_results(json.load(open({str(STUDY / 'results.json')!r})), descriptive=False); "
        "sys.exit('scipy.stats' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
