"""analyze_results: results.json in, analysis.json out (paired statistics, claim tests, decision).

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

from audit.designs import Comparison, Design, comparison_problems, design_of
from audit.errors import InputError, Location, ValidationFailed
from audit.stats import power, ttest
from audit.stats.ci import MeanInterval, mean_intervals
from audit.stats.decision import (
    POSITIVE,
    RULE_NAME,
    RULE_VERSION,
    Claim,
    ComparisonEvidence,
    Judgement,
    claims_from_edd,
    decide_claims,
    judge,
)
from audit.stats.diagnostics import ShapeDiagnostic, diagnose
from audit.stats.effect import cohen_dz, prob_superiority
from audit.stats.factorial import FactorialCell, factorial_effects
from audit.stats.multiplicity import adjust
from audit.stats.paired import Pairing, TrialTable, pair, study_attrition, trial_table
from audit.stats.permutation import EXACT_MAX_N, wilcoxon_crosscheck

SCHEMA_ID = "mlaudit/analysis/v1"
DEFAULT_SEED = 20211  # fixed so two runs on the same results agree; recorded in the output
DEFAULT_RESAMPLES = 9999


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


def signed_design(results: Mapping[str, Any], source: str) -> Design:
    """The design of the embedded (digest-checked) EDD; the plan must have run that design."""
    design = design_of(results["edd"]["document"]["protocol"])
    if results["plan"]["design"] != design.name:
        raise InputError(
            f"plan.design {results['plan']['design']!r} is not the signed design {design.name!r}",
            location=Location(source, "/plan/design"),
        )
    return design


def planned_comparisons(
    results: Mapping[str, Any], design: Design, source: str
) -> list[Comparison]:
    """The comparisons plan.comparisons records, which must be the ones the design implies.

    A results.json written before plans recorded them has none: the design's are used,
    which is what the analysis always compared. Either way every arm named is in plan.arms.
    """
    recorded = results["plan"].get("comparisons")
    if recorded is None:
        comparisons = list(design.comparisons)
    else:
        comparisons = [Comparison.from_dict(c) for c in recorded]
        problems = comparison_problems(comparisons, design.comparisons)
        if problems:
            # The signed design decides what is compared, never the results file.
            raise ValidationFailed(
                source, [(f"/plan/comparisons{pointer}", text) for pointer, text in problems]
            )
    arms = {str(a["name"]) for a in results["plan"]["arms"]}
    for index, comparison in enumerate(comparisons):
        for arm in (comparison.candidate_arm, comparison.comparator_arm):
            if arm not in arms:
                pointer = "/plan/arms" if recorded is None else f"/plan/comparisons/{index}"
                raise InputError(
                    f"comparison {comparison.describe()} needs arm {arm!r}, which plan.arms "
                    "lacks (the plan did not run the signed design)",
                    location=Location(source, pointer),
                )
    return comparisons


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
    shape: ShapeDiagnostic
    p_value: float | None = None  # claim test (one-sided vs boundary) or descriptive t-test
    statistic: float | None = None
    lower_bound: float | None = None  # claims only: one-sided (1 - alpha), good direction
    p_adjusted: float | None = None

    @property
    def goal(self) -> str:
        return str(self.metric["goal"])

    def good_diffs(self) -> np.ndarray:
        diffs = self.pairing.diffs()
        return diffs if self.goal == "maximize" else -diffs


def _run_test(item: Tested, alpha: float) -> None:
    """The claim test against the claim's boundary, or a descriptive two-sided t-test."""
    if item.pairing.n < 2:
        return
    if item.claim is None:
        item.p_value = float(ttest.two_sided_p(item.pairing.diffs())[0])
        return
    tests = ttest.boundary_tests(item.good_diffs(), item.claim.boundary, alpha)
    item.statistic = float(tests.statistic[0])
    item.p_value = float(tests.p_value[0])
    item.lower_bound = float(tests.lower[0])


def estimate_and_test(
    pairings: list[Pairing],
    metric_by_name: Mapping[str, Mapping[str, Any]],
    claim_of: Mapping[tuple[str, str], Claim],
    rule: Rule,
) -> list[Tested]:
    """CIs, the claim test of every claim, and the family's adjusted p (reported only)."""
    intervals = mean_intervals([p.diffs() for p in pairings], rule.confidence)
    tested = []
    for pairing, interval in zip(pairings, intervals, strict=True):
        claim = claim_of.get((pairing.comparison.target, pairing.metric))
        metric = metric_by_name[pairing.metric]
        good = pairing.diffs() if metric["goal"] == "maximize" else -pairing.diffs()
        item = Tested(pairing, metric, claim, interval, diagnose(good, pairing.seeds))
        _run_test(item, rule.alpha)
        tested.append(item)
    family = [t for t in tested if t.claim is not None]
    # A claim with fewer than 2 pairs has no test: p = 1 keeps it in the family, unsupported.
    raw = [1.0 if t.p_value is None or math.isnan(t.p_value) else t.p_value for t in family]
    adjusted = adjust(raw, rule.correction)
    for item, value in zip(family, adjusted, strict=True):
        item.p_adjusted = float(value)
    return tested


def judge_one(item: Tested, rule: Rule, floor: power.SeedFloor) -> Judgement:
    diffs = item.pairing.diffs()
    evidence = ComparisonEvidence(
        n=item.pairing.n,
        goal=item.goal,
        delta=float(diffs.mean()) if diffs.size else None,
        p_value=item.p_value,
        lower_bound=item.lower_bound,
        floor_reachable=floor.reachable,
        seeds_needed=floor.seeds_needed,
        attrition=len(item.pairing.attrition),
        degenerate=item.shape.degenerate,
    )
    return judge(item.claim, evidence, rule.alpha)


def _planning_effect(claim: Claim, observed: float) -> tuple[str, float | None]:
    """The effect to plan for: declared, else the conventional default for the claim."""
    if claim.planning_effect is not None:
        return "planning_effect (EDD)", claim.planning_effect
    if claim.claim == "non-inferior":
        return "no true difference (effect 0; no planning_effect in the EDD)", 0.0
    if claim.min_effect > 0:
        return "2 x min_effect (no planning_effect in the EDD)", 2 * claim.min_effect
    if observed > 0:
        return "observed effect (no planning_effect or min_effect in the EDD)", observed
    return "none (no planning_effect in the EDD and no positive observed effect)", None


def _hint(item: Tested, rule: Rule) -> dict[str, Any] | None:
    claim = item.claim
    good = item.good_diffs()
    if claim is None or good.size < 2:
        return None
    basis, effect = _planning_effect(claim, float(good.mean()))
    if effect is None:
        return {"basis": basis, "seeds_needed": None, "n": int(good.size)}
    sd, source = float(good.std(ddof=1)), "observed SD of the paired differences"
    if sd == 0 and claim.pilot_sd is not None:
        sd, source = claim.pilot_sd, "pilot_sd (EDD): the observed differences have no spread"
    hint = power.planning_hint(
        basis=basis,
        planning_effect=effect,
        boundary=claim.boundary,
        sd=sd,
        sd_source=source,
        alpha=rule.alpha,
        n=int(good.size),
    )
    return _as_dict(hint)


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


def _test_json(item: Tested, alpha: float) -> dict[str, Any]:
    n = item.pairing.n
    if item.claim is None:
        return {
            "value": item.p_value,
            "method": "paired t-test (descriptive, no claim)",
            "n": n,
            "alternative": "two-sided",
            "null": "delta = 0",
            "exact": False,
            "df": n - 1 if n >= 2 else None,
        }
    return {
        "value": item.p_value,
        "method": ttest.METHOD,
        "n": n,
        "alternative": "greater",
        "null": f"effect (good direction) <= {item.claim.boundary:g}",
        "hypotheses": item.claim.hypotheses(),
        "statistic": item.statistic,
        "df": n - 1 if n >= 2 else None,
        "level": alpha,
        "exact": False,
    }


def _bound_json(item: Tested, alpha: float) -> dict[str, Any] | None:
    if item.claim is None:
        return None
    return {
        "value": item.lower_bound,
        "level": 1 - alpha,
        "boundary": item.claim.boundary,
        "above_boundary": item.lower_bound is not None and item.lower_bound > item.claim.boundary,
        "method": ttest.BOUND_METHOD,
        "n": item.pairing.n,
    }


def _family_json(item: Tested, rule: Rule) -> dict[str, Any] | None:
    if item.claim is None:
        return None
    supported = item.p_adjusted is not None and item.p_adjusted < rule.alpha
    return {
        "correction": rule.correction,
        "p_adjusted": item.p_adjusted,
        "supported": bool(supported and not item.shape.degenerate),
        "use": "reported for the claims read as a family; the decision tests each claim "
        "at alpha (intersection-union)",
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
    descriptive: bool = True,
) -> dict[str, Any]:
    pairing, comparison = item.pairing, item.pairing.comparison
    diffs = pairing.diffs()
    n = pairing.n
    mean_comp = float(np.mean(pairing.comparator)) if n else None
    delta = float(diffs.mean()) if n else None
    superiority = prob_superiority(diffs, item.goal, rule.confidence)
    return {
        "target": comparison.target,
        "kind": comparison.kind,
        "metric": pairing.metric,
        "goal": item.goal,
        "primary": bool(item.metric["primary"]),
        "candidate_arm": comparison.candidate_arm,
        "comparator_arm": comparison.comparator_arm,
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
        "p_value": _test_json(item, rule.alpha),
        "claim_bound": _bound_json(item, rule.alpha),
        "p_adjusted": {
            "value": item.p_adjusted,
            "method": rule.correction if item.claim else "not in the claim family (no claim)",
        },
        "family": _family_json(item, rule),
        "diagnostics": item.shape.to_json(),
        "wilcoxon": _crosscheck_json(diffs) if descriptive else None,
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
        "conditions": judgement.conditions_json(),
        "attrition": [a.to_json() for a in pairing.attrition],
    }


# -- the analysis -----------------------------------------------------------------------


def _decision_rule_json(rule: Rule) -> dict[str, Any]:
    """The rule's version and wording: analyses from different rules are never confused."""
    return {
        "version": RULE_VERSION,
        "name": RULE_NAME,
        "improves": "H0: effect <= min_effect vs H1: effect > min_effect (good direction), "
        f"one-sided paired t-test at alpha {rule.alpha:g}; supported when p < alpha and "
        f"the one-sided {1 - rule.alpha:.0%} lower confidence bound is above min_effect",
        "non_inferior": "H0: effect <= -margin vs H1: effect > -margin (good direction), "
        f"one-sided paired t-test at alpha {rule.alpha:g}; supported when p < alpha and "
        f"the one-sided {1 - rule.alpha:.0%} lower confidence bound is above -margin",
        "decision": "passes only if every claim is supported: an intersection-union test, "
        "so each claim is tested at alpha and the decision's false-approval rate is at "
        "most alpha (Berger 1982)",
        "family": f"{rule.correction}-adjusted p-values of the claims are reported for "
        "reading the claims as a family; they do not enter the decision",
        "blocks": "attrition, fewer than 2 pairs, or identical paired differences block "
        "a positive verdict",
    }


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
    design: Design,
    table: TrialTable,
    metrics: list[dict[str, Any]],
    rule: Rule,
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any] | None:
    if design.name != "full-factorial":
        return None
    cells = [FactorialCell(a.name, dict(a.factors or {})) for a in design.factorial_cells()]
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
    descriptive: bool = True,
) -> dict[str, Any]:
    """The analysis document (schemas/analysis.schema.json) of one results.json document.

    `results_sha256` should be the sha256 of the file's bytes (the CLI passes it); without
    it the digest of the RFC 8785 canonical form is recorded and labelled as such.
    `descriptive=False` leaves out (as null) what no verdict or decision depends on and
    what costs most: the Wilcoxon cross-check (scipy.stats, a permutation test when
    differences tie), the sample-size hints (noncentral t) and the factorial effects
    (resampled). Everything the gate judges is computed as usual; that document is the
    gate's cheap deliberate recomputation and is never written as analysis.json.
    Raises ValidationFailed / InputError (exit 1) for a document that cannot be analysed.
    """
    if resamples < 1:
        raise InputError("resamples must be at least 1")
    check_results(results, source)
    document = results["edd"]["document"]
    rule = Rule.from_edd(document)
    metrics = _metrics(document)
    metric_by_name = {str(m["name"]): m for m in metrics}
    design = signed_design(results, source)
    comparisons_planned = planned_comparisons(results, design, source)
    targets = {c.target for c in comparisons_planned}
    claims = _claims(document, targets, set(metric_by_name), source)
    claim_of = {(c.target, c.metric): c for c in claims}
    table = trial_table(results, source)

    pairings = [pair(table, c, str(m["name"])) for c in comparisons_planned for m in metrics]
    tested = estimate_and_test(pairings, metric_by_name, claim_of, rule)
    family = [t for t in tested if t.claim is not None]

    comparisons: list[dict[str, Any]] = []
    judged: list[tuple[Claim, Judgement]] = []
    for item in tested:
        floor = power.seed_floor(item.pairing.n, rule.alpha)
        judgement = judge_one(item, rule, floor)
        if item.claim is not None:
            judged.append((item.claim, judgement))
        hint = _hint(item, rule) if descriptive else None
        comparisons.append(_comparison_json(item, rule, floor, hint, judgement, descriptive))
    judged.sort(key=lambda pair_: pair_[0].index)

    arm_names = [str(a["name"]) for a in results["plan"]["arms"]]
    failed = _failed_trials(table, arm_names)
    decision = decide_claims(
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
        "decision_rule": _decision_rule_json(rule),
        "method": {
            "seed": seed,
            "resamples": resamples,
            "ci": "two-sided Student-t interval at `confidence` for every n >= 2 "
            "(chosen by measured coverage, docs/methods.md)",
            "test": "claims: one-sided paired t-test of H0 effect (good direction) <= boundary "
            "at alpha, with the one-sided (1 - alpha) lower bound; no claim: two-sided "
            "paired t-test of delta = 0",
            "cross_check": "Wilcoxon signed-rank (scipy)",
            "factorial": f"sign-flip permutation (exact for n <= {EXACT_MAX_N}, else "
            f"{resamples} seeded draws), Benjamini-Hochberg",
            "family": {
                "correction": rule.correction,
                "size": len(family),
                "members": [f"{t.pairing.comparison.target}/{t.pairing.metric}" for t in family],
            },
            "software": _software(),
        },
        "metrics": metrics,
        "comparisons": comparisons,
        "factorial": _factorial(design, table, metrics, rule, resamples=resamples, seed=seed)
        if descriptive
        else None,
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
