"""Seed floor, sample-size hint and the verdict rules, one rule per test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from audit.stats.decision import Claim, Evidence, Judgement, decide, judge
from audit.stats.effect import cohen_dz, prob_superiority
from audit.stats.power import sample_size_hint, seed_floor


def test_five_seeds_can_never_reach_alpha_005():
    floor = seed_floor(5, 0.05, family_size=1)
    assert floor.min_p == pytest.approx(2 / 32)
    assert not floor.reachable
    assert floor.seeds_needed == 6


def test_seed_floor_accounts_for_the_correction():
    # Holm's first step with 5 claims needs p < 0.01: 2/2^n < 0.01 first holds at n = 8.
    floor = seed_floor(7, 0.05, family_size=5)
    assert floor.threshold == pytest.approx(0.01)
    assert not floor.reachable
    assert floor.seeds_needed == 8
    assert seed_floor(8, 0.05, family_size=5).reachable


def test_one_sided_floor_is_half():
    assert seed_floor(5, 0.05, 1, two_sided=False).min_p == pytest.approx(1 / 32)
    assert seed_floor(5, 0.05, 1, two_sided=False).reachable


def test_monte_carlo_floor_uses_the_number_of_draws():
    assert not seed_floor(30, 0.05, 20, resamples=99).reachable
    assert seed_floor(30, 0.05, 20, resamples=9999).reachable


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
        "ci_low": 0.02,
        "ci_high": 0.04,
        "level": 0.95,
        "p_adjusted": 0.004,
        "floor_reachable": True,
        "seeds_needed": 6,
        "attrition": 0,
    }
    base.update(changes)
    return Evidence(**base)


IMPROVES = Claim(0, "a", "score", "improves", min_effect=0.01, margin=None)
NON_INFERIOR = Claim(1, "b", "score", "non-inferior", min_effect=0.0, margin=0.01)


@pytest.mark.parametrize(
    ("claim", "changes", "verdict"),
    [
        (IMPROVES, {}, "improves"),
        (IMPROVES, {"p_adjusted": 0.06}, "not-shown"),
        (IMPROVES, {"ci_low": -0.001}, "not-shown"),
        (IMPROVES, {"delta": 0.009}, "not-shown"),
        (IMPROVES, {"floor_reachable": False}, "underpowered"),
        (IMPROVES, {"attrition": 1}, "attrition"),
        (IMPROVES, {"attrition": 1, "floor_reachable": False}, "attrition"),
        # minimize: a negative delta is the good direction
        (
            IMPROVES,
            {"goal": "minimize", "delta": -0.03, "ci_low": -0.04, "ci_high": -0.02},
            "improves",
        ),
        (IMPROVES, {"goal": "minimize"}, "not-shown"),
        (NON_INFERIOR, {"delta": -0.002, "ci_low": -0.008, "ci_high": 0.004}, "non-inferior"),
        (NON_INFERIOR, {"delta": -0.002, "ci_low": -0.011, "ci_high": 0.004}, "not-shown"),
        (NON_INFERIOR, {"p_adjusted": 0.2}, "not-shown"),
        (
            NON_INFERIOR,
            {"goal": "minimize", "delta": 0.005, "ci_low": -0.001, "ci_high": 0.009},
            "non-inferior",
        ),
        (
            NON_INFERIOR,
            {"goal": "minimize", "delta": 0.005, "ci_low": -0.001, "ci_high": 0.012},
            "not-shown",
        ),
        (None, {}, "no-claim"),
    ],
)
def test_verdicts(claim, changes, verdict):
    judgement = judge(claim, _evidence(**changes), alpha=0.05)
    assert judgement.verdict == verdict
    assert judgement.reasons


def test_blocked_verdicts_keep_what_the_evidence_said():
    judgement = judge(IMPROVES, _evidence(attrition=2), alpha=0.05)
    assert judgement.evidence_verdict == "improves"
    assert any("attrition" in reason for reason in judgement.reasons)


def test_decision_needs_every_claim_and_no_blockers():
    good = [(IMPROVES, Judgement("improves", ["ok"]))]
    assert decide(good, failed_trials=0, allowed_failed_trials=0, reproducibility=None).passed
    too_many = decide(good, failed_trials=2, allowed_failed_trials=1, reproducibility=None)
    assert not too_many.passed
    assert any("allowed_failed_trials=1" in r for r in too_many.reasons)
    irreproducible = decide(
        good,
        failed_trials=0,
        allowed_failed_trials=0,
        reproducibility={"arm": "baseline", "seed": 0, "passed": False},
    )
    assert not irreproducible.passed
    mixed = [*good, (NON_INFERIOR, Judgement("not-shown", ["ci"]))]
    result = decide(mixed, failed_trials=0, allowed_failed_trials=0, reproducibility=None)
    assert not result.passed
    assert result.summary.startswith("failed: 1 of 2")
    assert not decide([], failed_trials=0, allowed_failed_trials=0, reproducibility=None).passed
