"""analyze_results: results.json in, analysis.json out (paired statistics, Holm, the decision).

Reads nothing but the document it is given and never touches files, argv or the clock, so
the same results and seed always give byte-identical analysis.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from audit.errors import InputError, Location, ValidationFailed
from audit.stats import power
from audit.stats.ci import MeanInterval, mean_intervals
from audit.stats.decision import Claim, Evidence, Judgement, claims_from_edd, decide, judge
from audit.stats.effect import cohen_dz, prob_superiority
from audit.stats.factorial import FactorialCell, factorial_effects
from audit.stats.multiplicity import adjust
from audit.stats.paired import (
    Pairing,
    TrialTable,
    contrasts,
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
    import jsonschema

    from audit._resources import load_schema

    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        pointer = "".join(f"/{part}" for part in error.absolute_path)
        problems.append((prefix + pointer, error.message))
    return problems


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


def _hint(
    claim: Claim | None,
    diffs: np.ndarray,
    goal: str,
    alpha: float,
    family: int,
    confidence: float,
    floor: power.SeedFloor,
) -> dict[str, Any] | None:
    if claim is None or diffs.size < 2:
        return None
    sd = float(diffs.std(ddof=1))
    if claim.claim == "improves":
        observed = float(diffs.mean()) * (1 if goal == "maximize" else -1)
        basis, effect = (
            ("min_effect", claim.min_effect)
            if claim.min_effect > 0
            else ("observed delta", observed)
        )
        hint = power.sample_size_hint(
            sd, effect, alpha / family, power=HINT_POWER, two_sided=True, floor=floor.seeds_needed
        )
    else:
        basis, effect = "margin (true delta 0)", claim.margin or 0.0
        one_sided = min((1 - confidence) / 2, alpha / family)
        hint = power.sample_size_hint(
            sd, effect, one_sided, power=HINT_POWER, two_sided=False, floor=floor.seeds_needed
        )
    return {
        "seeds_needed": hint.seeds_needed,
        "effect": hint.effect,
        "basis": basis,
        "sd": hint.sd,
        "alpha": hint.alpha,
        "power": hint.power,
        "two_sided": hint.two_sided,
        "method": hint.method,
        "note": hint.note,
    }


def _comparison(
    pairing: Pairing,
    claim: Claim | None,
    metric: Mapping[str, Any],
    interval: MeanInterval,
    test: PermutationResult,
    null: str,
    p_adjusted: float | None,
    correction: str,
    floor: power.SeedFloor,
    hint: dict[str, Any] | None,
    judgement: Judgement,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    contrast = pairing.contrast
    diffs = pairing.diffs()
    n = pairing.n
    goal = str(metric["goal"])
    mean_cand = float(np.mean(pairing.candidate)) if n else None
    mean_comp = float(np.mean(pairing.comparator)) if n else None
    delta = float(diffs.mean()) if n else None
    relative = (delta / abs(mean_comp)) if delta is not None and mean_comp else None
    wilcoxon = wilcoxon_crosscheck(diffs) if n else None
    superiority = prob_superiority(diffs, goal, confidence)
    return {
        "target": contrast.target,
        "kind": contrast.kind,
        "metric": pairing.metric,
        "goal": goal,
        "primary": bool(metric["primary"]),
        "candidate_arm": contrast.candidate_arm,
        "comparator_arm": contrast.comparator_arm,
        "n": n,
        "seeds": pairing.seeds,
        "mean_candidate": mean_cand,
        "mean_comparator": mean_comp,
        "sd_delta": float(diffs.std(ddof=1)) if n >= 2 else None,
        "delta": {
            "value": delta,
            "method": "mean of paired differences (candidate - comparator)",
            "n": n,
        },
        "relative": {"value": relative, "method": "delta / |mean comparator|", "n": n},
        "ci": _interval_json(interval),
        "p_value": {
            "value": test.p_value,
            "method": test.method,
            "n": test.n,
            "alternative": test.alternative,
            "null": null,
            "exact": test.exact,
            "resamples": test.resamples,
            "seed": None if test.exact else seed,
        },
        "p_adjusted": {
            "value": p_adjusted,
            "method": correction if claim is not None else "not in the gate family (no claim)",
        },
        "wilcoxon": None
        if wilcoxon is None
        else {
            "statistic": wilcoxon.statistic,
            "p_value": wilcoxon.p_value,
            "method": wilcoxon.method,
            "note": wilcoxon.note,
            "n": n,
            "alternative": "two-sided",
            "null": "delta = 0",
        },
        "effect_size": {
            "value": cohen_dz(diffs),
            "method": "Cohen's d_z = mean(delta) / sd(delta)",
            "n": n,
        },
        "prob_superiority": None
        if superiority is None
        else {
            "value": superiority.value,
            "low": superiority.low,
            "high": superiority.high,
            "level": superiority.level,
            "n": superiority.n,
            "wins": superiority.wins,
            "ties": superiority.ties,
            "method": superiority.method,
        },
        "seed_floor": {
            "n": floor.n,
            "min_p": floor.min_p,
            "threshold": floor.threshold,
            "reachable": floor.reachable,
            "seeds_needed": floor.seeds_needed,
            "alternative": floor.alternative,
            "method": floor.method,
        },
        "sample_size_hint": hint,
        "claim": None if claim is None else claim.to_json(),
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
    """
    if resamples < 1:
        raise InputError("resamples must be at least 1")
    check_results(results, source)
    document = results["edd"]["document"]
    decision_rule = document["decision"]
    alpha = float(decision_rule["alpha"])
    confidence = float(decision_rule.get("confidence", 0.95))
    correction = str(decision_rule.get("correction", "holm"))
    metrics = _metrics(document)
    metric_by_name = {m["name"]: m for m in metrics}
    components = [str(c["name"]) for c in document["protocol"]["components"]]
    plan_contrasts = contrasts(results["plan"], components, source)
    claims = _claims(document, {c.target for c in plan_contrasts}, set(metric_by_name), source)
    claim_of = {(c.target, c.metric): c for c in claims}
    table = trial_table(results, source)

    pairings = [pair(table, c, m["name"]) for c in plan_contrasts for m in metrics]
    intervals = mean_intervals([p.diffs() for p in pairings], confidence, resamples, seed)
    tests = []
    for index, pairing in enumerate(pairings):
        claim = claim_of.get((pairing.contrast.target, pairing.metric))
        goal = str(metric_by_name[pairing.metric]["goal"])
        rng = np.random.default_rng([seed, 1, index])
        tests.append(_claim_test(pairing, claim, goal, resamples, rng))

    family = [i for i, p in enumerate(pairings) if (p.contrast.target, p.metric) in claim_of]
    adjusted = adjust([tests[i][0].p_value for i in family], correction)
    p_adjusted: dict[int, float] = {i: float(v) for i, v in zip(family, adjusted, strict=True)}
    family_size = len(family) if correction != "none" else 1

    comparisons: list[dict[str, Any]] = []
    judged: list[tuple[Claim, Judgement]] = []
    for index, pairing in enumerate(pairings):
        claim = claim_of.get((pairing.contrast.target, pairing.metric))
        metric = metric_by_name[pairing.metric]
        test, null = tests[index]
        interval = intervals[index]
        two_sided = claim is None or claim.claim == "improves"
        floor = power.seed_floor(
            pairing.n,
            alpha,
            family_size if claim else 1,
            two_sided,
            None if test.exact else resamples,
            EXACT_MAX_N,
        )
        diffs = pairing.diffs()
        evidence = Evidence(
            n=pairing.n,
            goal=str(metric["goal"]),
            delta=float(diffs.mean()) if pairing.n else None,
            ci_low=interval.low,
            ci_high=interval.high,
            level=confidence,
            p_adjusted=p_adjusted.get(index),
            floor_reachable=floor.reachable and pairing.n >= 2,
            seeds_needed=max(floor.seeds_needed, 2),
            attrition=len(pairing.attrition),
        )
        judgement = judge(claim, evidence, alpha)
        if claim is not None:
            judged.append((claim, judgement))
        hint = _hint(claim, diffs, str(metric["goal"]), alpha, family_size, confidence, floor)
        comparisons.append(
            _comparison(
                pairing,
                claim,
                metric,
                interval,
                test,
                null,
                p_adjusted.get(index),
                correction,
                floor,
                hint,
                judgement,
                confidence,
                seed,
            )
        )
    judged.sort(key=lambda item: item[0].index)

    arm_names = [str(a["name"]) for a in results["plan"]["arms"]]
    failed = _failed_trials(table, arm_names)
    allowed = int(decision_rule.get("allowed_failed_trials", 0))
    decision = decide(
        judged,
        failed_trials=failed,
        allowed_failed_trials=allowed,
        reproducibility=results.get("reproducibility"),
    )

    factorial = None
    if results["plan"]["design"] == "full-factorial":
        cells = [
            FactorialCell(
                str(a["name"]), {str(k): bool(v) for k, v in (a.get("factors") or {}).items()}
            )
            for a in results["plan"]["arms"]
            if a["kind"] == "factorial"
        ]
        factorial = factorial_effects(
            table, cells, metrics, confidence=confidence, resamples=resamples, seed=seed
        )

    if results_sha256 is None:
        import rfc8785

        results_sha256 = hashlib.sha256(rfc8785.dumps(dict(results))).hexdigest()
        digest_of = "RFC 8785 canonical JSON of the results document (no file bytes given)"
    else:
        digest_of = "results file bytes"

    analysis = {
        "schema": SCHEMA_ID,
        "edd": {
            "id": results["edd"]["id"],
            "version": results["edd"]["version"],
            "digest": results["edd"]["digest"],
            "title": document.get("title"),
        },
        "results_sha256": results_sha256,
        "results_sha256_of": digest_of,
        "design": results["plan"]["design"],
        "alpha": alpha,
        "confidence": confidence,
        "correction": correction,
        "method": {
            "seed": seed,
            "resamples": resamples,
            "ci": f"Student-t for n < 20 pairs, BCa bootstrap ({resamples} resamples) for n >= 20",
            "test": f"sign-flip permutation: exact for n <= {EXACT_MAX_N}, else {resamples} "
            "seeded Monte Carlo draws",
            "cross_check": "Wilcoxon signed-rank (scipy)",
            "family": {
                "correction": correction,
                "size": len(family),
                "members": [f"{pairings[i].contrast.target}/{pairings[i].metric}" for i in family],
            },
            "software": _software(),
        },
        "metrics": metrics,
        "comparisons": comparisons,
        "factorial": factorial,
        "attrition": [a.to_json() for a in study_attrition(table, arm_names, metric_by_name)],
        "failed_trials": {"count": failed, "allowed": allowed},
        "decision": {
            **decision.to_json(),
            "claims": [
                {
                    **claim.to_json(),
                    "verdict": j.verdict,
                    "supported": j.verdict in ("improves", "non-inferior"),
                }
                for claim, j in judged
            ],
        },
    }
    result: dict[str, Any] = _finite(analysis)
    return result
