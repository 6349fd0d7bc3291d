"""Seed floor, sample-size hint and the verdict rules, one rule per test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from audit.stats.decision import Claim, ComparisonEvidence, Judgement, decide_claims, judge
from audit.stats.effect import cohen_dz, prob_superiority
from audit.stats.power import planning_hint, sample_size_hint, seed_floor, t_power


def test_the_floor_follows_the_t_test():
    # The claim test is a t-test at alpha for every claim (intersection-union): it needs
    # one degree of freedom, whatever the number of claims.
    assert not seed_floor(1, 0.05).reachable
    floor = seed_floor(2, 0.05)
    assert floor.reachable
    assert floor.seeds_needed == 2
    assert floor.threshold == 0.05


def _power(n, effect, sd, alpha):
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)
    ncp = effect / sd * np.sqrt(n)
    return sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)


def test_sample_size_hint_is_the_first_n_with_enough_power():
    hint = sample_size_hint(sd=1.0, effect=0.5, alpha=0.05)
    # The textbook answer for d_z = 0.5, two-sided 5%, 80% power is 34 pairs.
    assert hint.seeds_needed == 34
    assert _power(34, 0.5, 1.0, 0.05) >= 0.8 > _power(33, 0.5, 1.0, 0.05)


def test_sample_size_hint_respects_the_floor_and_limits():
    assert sample_size_hint(sd=0.001, effect=1.0, alpha=0.01, floor=8).seeds_needed == 8
    assert sample_size_hint(sd=1.0, effect=0.0, alpha=0.05).seeds_needed is None
    assert sample_size_hint(sd=1e6, effect=1.0, alpha=0.05).seeds_needed is None


def test_cohen_dz_and_prob_superiority():
    d = np.array([0.1, 0.2, 0.3, -0.1, 0.0])
    assert cohen_dz(d) == pytest.approx(d.mean() / d.std(ddof=1))
    assert cohen_dz(np.full(4, 0.2)) is None
    sup = prob_superiority(d, "maximize", 0.95)
    assert sup is not None
    assert sup.value == pytest.approx((3 + 0.5) / 5)
    assert sup.low <= sup.value <= sup.high
    worse = prob_superiority(d, "minimize", 0.95)
    assert worse is not None
    assert worse.value == pytest.approx((1 + 0.5) / 5)


def _evidence(**changes):
    base = {
        "n": 10,
        "goal": "maximize",
        "delta": 0.03,
        "p_value": 0.004,
        "lower_bound": 0.02,
        "floor_reachable": True,
        "seeds_needed": 2,
        "attrition": 0,
        "degenerate": False,
    }
    base.update(changes)
    return ComparisonEvidence(**base)


IMPROVES = Claim(0, "a", "score", "improves", min_effect=0.01, margin=None)
NON_INFERIOR = Claim(1, "b", "score", "non-inferior", min_effect=0.0, margin=0.01)


@pytest.mark.parametrize(
    ("claim", "changes", "verdict"),
    [
        (IMPROVES, {}, "improves"),
        (IMPROVES, {"p_value": 0.06}, "not-shown"),
        # The bound must clear min_effect, not 0: a point estimate above it is not enough.
        (IMPROVES, {"lower_bound": 0.009}, "not-shown"),
        (IMPROVES, {"lower_bound": 0.01}, "not-shown"),
        (IMPROVES, {"floor_reachable": False}, "underpowered"),
        (IMPROVES, {"attrition": 1}, "attrition"),
        (IMPROVES, {"attrition": 1, "floor_reachable": False}, "attrition"),
        (IMPROVES, {"degenerate": True}, "not-shown"),
        # minimize: the evidence arrives in the good direction already; delta is metric units
        (IMPROVES, {"goal": "minimize", "delta": -0.03}, "improves"),
        (NON_INFERIOR, {"delta": -0.002, "lower_bound": -0.008}, "non-inferior"),
        (NON_INFERIOR, {"delta": -0.002, "lower_bound": -0.011}, "not-shown"),
        (NON_INFERIOR, {"delta": -0.002, "lower_bound": -0.01}, "not-shown"),
        (NON_INFERIOR, {"p_value": 0.2}, "not-shown"),
        (NON_INFERIOR, {"p_value": None, "lower_bound": None}, "not-shown"),
        (None, {}, "no-claim"),
    ],
)
def test_verdicts(claim, changes, verdict):
    judgement = judge(claim, _evidence(**changes), alpha=0.05)
    assert judgement.verdict == verdict
    assert judgement.reasons


def test_reasons_state_the_hypotheses_tested():
    reasons = judge(IMPROVES, _evidence(), alpha=0.05).reasons
    assert reasons == [
        "H0: effect <= 0.01 vs H1: effect > 0.01 (good direction): one-sided paired t-test "
        "p 0.004 < alpha 0.05",
        "one-sided 95% lower confidence bound 0.02 > min_effect 0.01",
    ]
    ni = judge(NON_INFERIOR, _evidence(lower_bound=-0.011), alpha=0.05).reasons
    assert ni[1] == "one-sided 95% lower confidence bound -0.011 <= -margin -0.01"


def test_blocked_verdicts_keep_what_the_evidence_said():
    judgement = judge(IMPROVES, _evidence(attrition=2), alpha=0.05)
    assert judgement.evidence_verdict == "improves"
    assert any("attrition" in reason for reason in judgement.reasons)
    degenerate = judge(IMPROVES, _evidence(degenerate=True), alpha=0.05)
    assert degenerate.evidence_verdict == "improves"
    assert any("seed never reaches training" in reason for reason in degenerate.reasons)


def test_planning_hint_is_for_the_rule_actually_applied():
    # min_effect 0.01, planning effect 0.02, SD 0.01: the claim test must clear 0.01 with
    # a true effect of 0.02, i.e. d = 1 above the boundary, one-sided at 0.05.
    hint = planning_hint(
        basis="planning_effect (EDD)",
        planning_effect=0.02,
        boundary=0.01,
        sd=0.01,
        sd_source="pilot",
        alpha=0.05,
        n=5,
    )
    needed = hint.seeds_needed
    assert needed is not None
    assert _one_sided_power(needed, 1.0, 0.05) >= 0.8 > _one_sided_power(needed - 1, 1.0, 0.05)
    assert needed == 8
    assert hint.power_at_n == pytest.approx(_one_sided_power(5, 1.0, 0.05))
    # Planning at the boundary itself has no power to give: no hint.
    at_boundary = planning_hint(
        basis="x", planning_effect=0.01, boundary=0.01, sd=0.01, sd_source="s", alpha=0.05, n=5
    )
    assert at_boundary.seeds_needed is None
    assert at_boundary.note is not None


def _one_sided_power(n, d, alpha):
    crit = sps.t.ppf(1 - alpha, n - 1)
    return sps.nct.sf(crit, n - 1, d * np.sqrt(n))


def test_t_power_matches_a_simulated_t_test():
    rng = np.random.default_rng(3)
    samples = rng.normal(0.5, 1.0, (20000, 12))
    simulated = np.mean(sps.ttest_1samp(samples, 0.0, axis=1, alternative="greater").pvalue < 0.05)
    exact = t_power(12, 0.5, 1.0, 0.05)
    assert abs(simulated - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000)


def test_decision_needs_every_claim_and_no_blockers():
    good = [(IMPROVES, Judgement("improves", ["ok"]))]
    assert decide_claims(
        good, failed_trials=0, allowed_failed_trials=0, reproducibility=None
    ).passed
    too_many = decide_claims(good, failed_trials=2, allowed_failed_trials=1, reproducibility=None)
    assert not too_many.passed
    assert any("allowed_failed_trials=1" in r for r in too_many.reasons)
    irreproducible = decide_claims(
        good,
        failed_trials=0,
        allowed_failed_trials=0,
        reproducibility={"arm": "baseline", "seed": 0, "passed": False},
    )
    assert not irreproducible.passed
    mixed = [*good, (NON_INFERIOR, Judgement("not-shown", ["ci"]))]
    result = decide_claims(mixed, failed_trials=0, allowed_failed_trials=0, reproducibility=None)
    assert not result.passed
    assert result.summary.startswith("failed: 1 of 2")
    assert not decide_claims(
        [], failed_trials=0, allowed_failed_trials=0, reproducibility=None
    ).passed
