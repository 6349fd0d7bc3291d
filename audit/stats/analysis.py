"""analyze_results: results.json in, analysis.json out (paired statistics, Holm, the decision).

Reads nothing but the document it is given and never touches files, argv or the clock, so
the same results and seed always give byte-identical analysis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from audit.errors import InputError, Location, ValidationFailed
from audit.stats import power
from audit.stats.ci import MeanInterval, mean_intervals
from audit.stats.decision import (
    POSITIVE,
    Claim,
    Evidence,
    Judgement,
    claims_from_edd,
    decide,
    judge,
)
from audit.stats.effect import cohen_dz, prob_superiority
from audit.stats.factorial import FactorialCell, factorial_effects
from audit.stats.multiplicity import adjust
from audit.stats.paired import (
    Pairing,
    TrialTable,
    contrasts,
    factorial_cells,
    pair,
    study_attrition,
    trial_table,
)
from audit.stats.permutation import (
    EXACT_MAX_N,
    PermutationResult,
    sign_flip_test,
    wilcoxon_crosscheck,
)

SCHEMA_ID = "mlaudit/analysis/v1"
DEFAULT_SEED = 20211  # fixed so two runs on the same results agree; recorded in the output
DEFAULT_RESAMPLES = 9999
HINT_POWER = 0.8


# -- input checks -------------------------------------------------------------------------


def _schema_problems(document: Any, schema_name: str, prefix: str) -> list[tuple[str, str]]:
    from audit._resources import schema_problems

    return schema_problems(document, schema_name, prefix)


def check_results(results: Any, source: str) -> None:
    """Raise ValidationFailed / InputError unless `results` is a results.json we can analyse."""
    problems = _schema_problems(results, "results", "")
    if not problems:
        problems = _schema_problems(results["edd"]["document"], "edd", "/edd/document")
    if problems:
        raise ValidationFailed(source, problems)
    _check_edd_digest(results, source)
    if results["plan"].get("shard"):
        # One shard holds only part of the trials; analysing it would call the rest attrition.
        raise InputError(
            f"this is shard {results['plan']['shard']}; collect the shards first "
            "(mlaudit ablate collect)",
            location=Location(source, "/plan/shard"),
        )
    arms = {str(a["name"]) for a in results["plan"]["arms"]}
    seeds = {int(s) for s in results["plan"]["seeds"]}
    for index, trial in enumerate(results["trials"]):
        where = Location(source, f"/trials/{index}")
        if trial["arm"] not in arms:
            raise InputError(f"trial arm {trial['arm']!r} is not in plan.arms", location=where)
        if trial["seed"] not in seeds:
            raise InputError(f"trial seed {trial['seed']} is not in plan.seeds", location=where)


def _check_edd_digest(results: Mapping[str, Any], source: str) -> None:
    import rfc8785

    digest = hashlib.sha256(rfc8785.dumps(results["edd"]["document"])).hexdigest()
    if digest != results["edd"]["digest"]:
        raise InputError(
            "edd.document does not match edd.digest (the embedded EDD was changed)",
            location=Location(source, "/edd/digest"),
        )


def _claims(
    document: Mapping[str, Any], targets: set[str], metrics: set[str], source: str
) -> list[Claim]:
    claims = claims_from_edd(document)
    seen: set[tuple[str, str]] = set()
    for claim in claims:
        where = Location(source, f"/edd/document/decision/claims/{claim.index}")
        if claim.target not in targets:
            raise InputError(
                f"claim target {claim.target!r} has no arm in the plan", location=where
            )
        if claim.metric not in metrics:
            raise InputError(f"claim metric {claim.metric!r} is not an EDD metric", location=where)
        if (claim.target, claim.metric) in seen:
            raise InputError(
                f"more than one claim for {claim.target!r} on {claim.metric!r}", location=where
            )
        seen.add((claim.target, claim.metric))
    return claims


# -- statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """The EDD's decision rule, with defaults filled in."""

    alpha: float
    confidence: float
    correction: str
    allowed_failed_trials: int

    @classmethod
    def from_edd(cls, document: Mapping[str, Any]) -> Rule:
        decision = document["decision"]
        return cls(
            alpha=float(decision["alpha"]),
            confidence=float(decision.get("confidence", 0.95)),
            correction=str(decision.get("correction", "holm")),
            allowed_failed_trials=int(decision.get("allowed_failed_trials", 0)),
        )


@dataclass
class Tested:
    """One comparison after estimation and testing, before judgement."""

    pairing: Pairing
    metric: Mapping[str, Any]
    claim: Claim | None
    interval: MeanInterval
    test: PermutationResult
    null: str
    p_adjusted: float | None = None

    @property
    def goal(self) -> str:
        return str(self.metric["goal"])


def _claim_test(
    pairing: Pairing, claim: Claim | None, goal: str, resamples: int, rng: np.random.Generator
) -> tuple[PermutationResult, str]:
    """The test that matches the claim: H0 delta = 0, or H0 delta at the NI margin."""
    diffs = pairing.diffs()
    if claim is not None and claim.claim == "non-inferior":
        good = diffs if goal == "maximize" else -diffs
        margin = claim.margin or 0.0
        # Shifting by the margin turns "worse by at least margin" into a symmetric null.
        result = sign_flip_test(
            good, alternative="greater", resamples=resamples, rng=rng, null_shift=-margin
        )
        return result, f"delta (good direction) <= -{margin:g}"
    return sign_flip_test(diffs, resamples=resamples, rng=rng), "delta = 0"


def estimate_and_test(
    pairings: list[Pairing],
    metric_by_name: Mapping[str, Mapping[str, Any]],
    claim_of: Mapping[tuple[str, str], Claim],
    rule: Rule,
    *,
    resamples: int,
    seed: int,
) -> list[Tested]:
    """CIs, the claim-matched permutation test, and the multiplicity-adjusted p of claims."""
    intervals = mean_intervals([p.diffs() for p in pairings], rule.confidence, resamples, seed)
    tested = []
    for index, (pairing, interval) in enumerate(zip(pairings, intervals, strict=True)):
        claim = claim_of.get((pairing.contrast.target, pairing.metric))
        metric = metric_by_name[pairing.metric]
        # One Generator per comparison, seeded from (seed, 1, index): reproducible alone.
        rng = np.random.default_rng([seed, 1, index])
        test, null = _claim_test(pairing, claim, str(metric["goal"]), resamples, rng)
        tested.append(Tested(pairing, metric, claim, interval, test, null))
    family = [t for t in tested if t.claim is not None]
    adjusted = adjust([t.test.p_value for t in family], rule.correction)
    for item, value in zip(family, adjusted, strict=True):
        item.p_adjusted = float(value)
    return tested


def _floor(item: Tested, rule: Rule, family_size: int, resamples: int) -> power.SeedFloor:
    two_sided = item.claim is None or item.claim.claim == "improves"
    return power.seed_floor(
        item.pairing.n,
        rule.alpha,
        family_size if item.claim else 1,
        two_sided,
        None if item.test.exact else resamples,
        EXACT_MAX_N,
    )


def judge_one(item: Tested, rule: Rule, floor: power.SeedFloor) -> Judgement:
    diffs = item.pairing.diffs()
    evidence = Evidence(
        n=item.pairing.n,
        goal=item.goal,
        delta=float(diffs.mean()) if diffs.size else None,
        ci_low=item.interval.low,
        ci_high=item.interval.high,
        level=rule.confidence,
        p_adjusted=item.p_adjusted,
        floor_reachable=floor.reachable and item.pairing.n >= 2,
        seeds_needed=max(floor.seeds_needed, 2),
        attrition=len(item.pairing.attrition),
    )
    return judge(item.claim, evidence, rule.alpha)


def _hint(
    item: Tested, rule: Rule, family_size: int, floor: power.SeedFloor
) -> dict[str, Any] | None:
    claim = item.claim
    diffs = item.pairing.diffs()
    if claim is None or diffs.size < 2:
        return None
    sd = float(diffs.std(ddof=1))
    alpha = rule.alpha / family_size
    if claim.claim == "improves":
        observed = float(diffs.mean()) * (1 if item.goal == "maximize" else -1)
        if claim.min_effect > 0:
            basis, effect = "min_effect", claim.min_effect
        else:
            basis, effect = "observed delta", observed
        hint = power.sample_size_hint(
            sd, effect, alpha, power=HINT_POWER, two_sided=True, floor=floor.seeds_needed
        )
    else:
        basis, effect = "margin (true delta 0)", claim.margin or 0.0
        # Both the CI bound and the one-sided test must pass; plan for the stricter.
        one_sided = min((1 - rule.confidence) / 2, alpha)
        hint = power.sample_size_hint(
            sd, effect, one_sided, power=HINT_POWER, two_sided=False, floor=floor.seeds_needed
        )
    return {"basis": basis, **_as_dict(hint)}


# -- JSON shaping -------------------------------------------------------------------------


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(dataclasses.asdict(value))


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: a number that is not finite becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _interval_json(interval: MeanInterval) -> dict[str, Any]:
    data: dict[str, Any] = {
        "low": interval.low,
        "high": interval.high,
        "level": interval.level,
        "method": interval.method,
        "n": interval.n,
    }
    if interval.resamples is not None:
        data.update(
            resamples=interval.resamples, seed=interval.seed, stream=list(interval.stream or ())
        )
    return data


def _test_json(test: PermutationResult, null: str, seed: int) -> dict[str, Any]:
    return {
        "value": test.p_value,
        "method": test.method,
        "n": test.n,
        "alternative": test.alternative,
        "null": null,
        "exact": test.exact,
        "resamples": test.resamples,
        "seed": None if test.exact else seed,
    }


def _crosscheck_json(diffs: np.ndarray) -> dict[str, Any] | None:
    if diffs.size == 0:
        return None
    result = wilcoxon_crosscheck(diffs)
    return {
        **_as_dict(result),
        "n": int(diffs.size),
        "alternative": "two-sided",
        "null": "delta = 0",
    }


def _comparison_json(
    item: Tested,
    rule: Rule,
    floor: power.SeedFloor,
    hint: dict[str, Any] | None,
    judgement: Judgement,
    seed: int,
) -> dict[str, Any]:
    pairing, contrast = item.pairing, item.pairing.contrast
    diffs = pairing.diffs()
    n = pairing.n
    mean_comp = float(np.mean(pairing.comparator)) if n else None
    delta = float(diffs.mean()) if n else None
    superiority = prob_superiority(diffs, item.goal, rule.confidence)
    return {
        "target": contrast.target,
        "kind": contrast.kind,
        "metric": pairing.metric,
        "goal": item.goal,
        "primary": bool(item.metric["primary"]),
        "candidate_arm": contrast.candidate_arm,
        "comparator_arm": contrast.comparator_arm,
        "n": n,
        "seeds": pairing.seeds,
        "mean_candidate": float(np.mean(pairing.candidate)) if n else None,
        "mean_comparator": mean_comp,
        "sd_delta": float(diffs.std(ddof=1)) if n >= 2 else None,
        "delta": {
            "value": delta,
            "method": "mean of paired differences (candidate - comparator)",
            "n": n,
        },
        "relative": {
            "value": delta / abs(mean_comp) if delta is not None and mean_comp else None,
            "method": "delta / |mean comparator|",
            "n": n,
        },
        "ci": _interval_json(item.interval),
        "p_value": _test_json(item.test, item.null, seed),
        "p_adjusted": {
            "value": item.p_adjusted,
            "method": rule.correction if item.claim else "not in the gate family (no claim)",
        },
        "wilcoxon": _crosscheck_json(diffs),
        "effect_size": {
            "value": cohen_dz(diffs),
            "method": "Cohen's d_z = mean(delta) / sd(delta)",
            "n": n,
        },
        "prob_superiority": None if superiority is None else _as_dict(superiority),
        "seed_floor": _as_dict(floor),
        "sample_size_hint": hint,
        "claim": None if item.claim is None else item.claim.to_json(),
        "verdict": judgement.verdict,
        "evidence_verdict": judgement.evidence_verdict,
        "reasons": judgement.reasons,
        "attrition": [a.to_json() for a in pairing.attrition],
    }


# -- the analysis -----------------------------------------------------------------------


def _metrics(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    primary = document["metrics"]["primary"]
    metrics = [{"name": primary["name"], "goal": primary["goal"], "primary": True}]
    for extra in document["metrics"].get("secondary", []):
        metrics.append({"name": extra["name"], "goal": extra["goal"], "primary": False})
    return metrics


def _failed_trials(table: TrialTable, arms: list[str]) -> int:
    """Planned trials that did not succeed (failed, timeout, not_run, or no record)."""
    return sum(
        1
        for arm in arms
        for seed in table.planned_seeds
        if table.status.get((arm, seed)) != "succeeded"
    )


def _software() -> dict[str, str]:
    import scipy

    from audit import __version__

    return {"mlaudit": __version__, "numpy": np.__version__, "scipy": scipy.__version__}


def _factorial(
    results: Mapping[str, Any],
    table: TrialTable,
    metrics: list[dict[str, Any]],
    rule: Rule,
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any] | None:
    if results["plan"]["design"] != "full-factorial":
        return None
    cells = [
        FactorialCell(str(a["name"]), {str(k): bool(v) for k, v in a["factors"].items()})
        for a in factorial_cells(list(results["plan"]["arms"]))
    ]
    return factorial_effects(
        table, cells, metrics, confidence=rule.confidence, resamples=resamples, seed=seed
    )


def _results_digest(results: Mapping[str, Any], given: str | None) -> tuple[str, str]:
    if given is not None:
        return given, "results file bytes"
    import rfc8785

    digest = hashlib.sha256(rfc8785.dumps(dict(results))).hexdigest()
    return digest, "RFC 8785 canonical JSON of the results document (no file bytes given)"


def analyze_results(
    results: Mapping[str, Any],
    *,
    results_sha256: str | None = None,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    source: str = "results.json",
) -> dict[str, Any]:
    """The analysis document (schemas/analysis.schema.json) of one results.json document.

    `results_sha256` should be the sha256 of the file's bytes (the CLI passes it); without
    it the digest of the RFC 8785 canonical form is recorded and labelled as such.
    Raises ValidationFailed / InputError (exit 1) for a document that cannot be analysed.
    """
    if resamples < 1:
        raise InputError("resamples must be at least 1")
    check_results(results, source)
    document = results["edd"]["document"]
    rule = Rule.from_edd(document)
    metrics = _metrics(document)
    metric_by_name = {str(m["name"]): m for m in metrics}
    components = [str(c["name"]) for c in document["protocol"]["components"]]
    plan_contrasts = contrasts(results["plan"], components, source)
    claims = _claims(document, {c.target for c in plan_contrasts}, set(metric_by_name), source)
    claim_of = {(c.target, c.metric): c for c in claims}
    table = trial_table(results, source)

    pairings = [pair(table, c, str(m["name"])) for c in plan_contrasts for m in metrics]
    tested = estimate_and_test(
        pairings, metric_by_name, claim_of, rule, resamples=resamples, seed=seed
    )
    family = [t for t in tested if t.claim is not None]
    family_size = len(family) if rule.correction != "none" else 1

    comparisons: list[dict[str, Any]] = []
    judged: list[tuple[Claim, Judgement]] = []
    for item in tested:
        floor = _floor(item, rule, family_size, resamples)
        judgement = judge_one(item, rule, floor)
        if item.claim is not None:
            judged.append((item.claim, judgement))
        hint = _hint(item, rule, family_size, floor)
        comparisons.append(_comparison_json(item, rule, floor, hint, judgement, seed))
    judged.sort(key=lambda pair_: pair_[0].index)

    arm_names = [str(a["name"]) for a in results["plan"]["arms"]]
    failed = _failed_trials(table, arm_names)
    decision = decide(
        judged,
        failed_trials=failed,
        allowed_failed_trials=rule.allowed_failed_trials,
        reproducibility=results.get("reproducibility"),
    )
    digest, digest_of = _results_digest(results, results_sha256)
    analysis = {
        "schema": SCHEMA_ID,
        "edd": {
            "id": results["edd"]["id"],
            "version": results["edd"]["version"],
            "digest": results["edd"]["digest"],
            "title": document.get("title"),
        },
        "results_sha256": digest,
        "results_sha256_of": digest_of,
        "design": results["plan"]["design"],
        "alpha": rule.alpha,
        "confidence": rule.confidence,
        "correction": rule.correction,
        "method": {
            "seed": seed,
            "resamples": resamples,
            "ci": f"Student-t for n < 20 pairs, BCa bootstrap ({resamples} resamples) for n >= 20",
            "test": f"sign-flip permutation: exact for n <= {EXACT_MAX_N}, else {resamples} "
            "seeded Monte Carlo draws",
            "cross_check": "Wilcoxon signed-rank (scipy)",
            "family": {
                "correction": rule.correction,
                "size": len(family),
                "members": [f"{t.pairing.contrast.target}/{t.pairing.metric}" for t in family],
            },
            "software": _software(),
        },
        "metrics": metrics,
        "comparisons": comparisons,
        "factorial": _factorial(results, table, metrics, rule, resamples=resamples, seed=seed),
        "attrition": [a.to_json() for a in study_attrition(table, arm_names, metric_by_name)],
        "failed_trials": {"count": failed, "allowed": rule.allowed_failed_trials},
        "decision": {
            **decision.to_json(),
            "claims": [
                {**claim.to_json(), "verdict": j.verdict, "supported": j.verdict in POSITIVE}
                for claim, j in judged
            ],
        },
    }
    result: dict[str, Any] = _finite(analysis)
    return result
