"""The merge gate: every rule judged on its evidence, then one GateResult (gate.json).

Rules are pure functions of plain inputs (the EDD, its verification, results,
analysis, tracking evidence) and return data; the CLI renders them as text,
JSON or JUnit. The gate passes only when every rule passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit.designs import Comparison, comparison_problems, design_of
from audit.documents.gate_result import RULE_KINDS, EddRef, GateResult, RuleResult
from audit.edd.model import Edd
from audit.provenance.declared import data_key


@dataclass(frozen=True)
class TrackingEvidence:
    """What `track verify` found for the runs of this study."""

    uri: str
    unsealed_trials: tuple[str, ...]
    verify_passed: bool
    problems: tuple[str, ...] = ()
    # Where results.json disagrees with the sealed runs ("trial T: field: ..."),
    # including sealed trial runs that results.json leaves out.
    differences: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateInputs:
    edd: Edd
    verification_passed: bool
    verification_reasons: tuple[str, ...]
    results: Mapping[str, Any]
    results_sha256: str
    analysis: Mapping[str, Any]
    recomputed_analysis: Mapping[str, Any] | None = None
    recompute_error: str | None = None
    expected_plan: Mapping[str, Any] | None = None
    plan_error: str | None = None
    tracking: TrackingEvidence | None = None


Rule = Callable[[GateInputs], RuleResult]


def _rule(rule: str, title: str, passed: bool, evidence: str) -> RuleResult:
    return RuleResult(rule, title, passed, evidence, RULE_KINDS[rule])


def _result(rule: str, title: str, problems: Sequence[str], ok_evidence: str) -> RuleResult:
    if problems:
        return _rule(rule, title, False, "; ".join(problems))
    return _rule(rule, title, True, ok_evidence)


def rule_edd_verified(inputs: GateInputs) -> RuleResult:
    problems: list[str] = []
    if not inputs.verification_passed:
        problems.append("EDD approvals do not verify: " + "; ".join(inputs.verification_reasons))
    digest = inputs.edd.digest
    if inputs.results.get("edd", {}).get("digest") != digest:
        problems.append("results.json was produced from another EDD digest")
    if inputs.analysis.get("edd", {}).get("digest") != digest:
        problems.append("analysis.json was produced from another EDD digest")
    if inputs.analysis.get("results_sha256") != inputs.results_sha256:
        problems.append("analysis.json was computed from a different results.json")
    return _result(
        "edd-verified",
        "The EDD verifies against the trust ref and the results come from this exact EDD",
        problems,
        f"EDD {inputs.edd.id} v{inputs.edd.version} digest {digest[:16]}... approved; "
        "results and analysis carry the same digest",
    )


def _arm_signature(arm: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    return str(arm.get("name")), tuple(str(o) for o in arm.get("overrides", []))


def _comparisons_as_signed(plan: Mapping[str, Any], protocol: Mapping[str, Any]) -> list[str]:
    """plan.comparisons, when recorded, must be exactly what the signed design implies."""
    recorded = plan.get("comparisons")
    if recorded is None:  # written before plans recorded them: the analysis derives them
        return []
    found = comparison_problems(
        [Comparison.from_dict(c) for c in recorded], design_of(protocol).comparisons
    )
    return [f"plan.comparisons{pointer}: {message}" for pointer, message in found]


def rule_protocol_as_signed(inputs: GateInputs) -> RuleResult:
    problems: list[str] = []
    plan = inputs.results.get("plan", {})
    protocol = inputs.edd.document["protocol"]
    if inputs.plan_error:
        problems.append(inputs.plan_error)
    if inputs.expected_plan is not None:
        want = sorted(_arm_signature(a) for a in inputs.expected_plan.get("arms", []))
        got = sorted(_arm_signature(a) for a in plan.get("arms", []))
        if want != got:
            missing = sorted({a for a, _ in want} - {a for a, _ in got})
            extra = sorted({a for a, _ in got} - {a for a, _ in want})
            detail = f" (missing {missing}, extra {extra})" if missing or extra else ""
            problems.append(f"executed arms differ from the signed design{detail}")
    problems += _comparisons_as_signed(plan, protocol)
    if list(plan.get("seeds", [])) != list(protocol["seeds"]):
        problems.append(f"seeds {plan.get('seeds')} differ from the signed {protocol['seeds']}")
    if list(plan.get("command", [])) != list(protocol["command"]):
        problems.append("the executed command template differs from the signed one")
    data = inputs.results.get("provenance", {}).get("data", {}) or {}
    for entry in inputs.edd.document["data"]:
        key = data_key(entry)
        if not data.get(key):
            problems.append(f"no recorded data hash for signed data path {key}")
    return _result(
        "protocol-as-signed",
        "The executed protocol equals the signed one (arms, seeds, command, data)",
        problems,
        f"{len(plan.get('arms', []))} arms x {len(plan.get('seeds', []))} seeds, "
        f"command and {len(data)} data hash(es) as signed",
    )


def rule_budget(inputs: GateInputs) -> RuleResult:
    budget = inputs.results.get("budget", {})
    signed = inputs.edd.document["budget"]
    problems: list[str] = []
    run = int(budget.get("trials_run", 0))
    wall = float(budget.get("wall_seconds", 0.0))
    if run > int(signed["max_trials"]):
        problems.append(f"{run} trials run, signed maximum {signed['max_trials']}")
    if wall > float(signed["max_wall_minutes"]) * 60:
        problems.append(f"{wall:.0f} s wall time, signed maximum {signed['max_wall_minutes']} min")
    if budget.get("exhausted"):
        problems.append("the budget ran out before every trial ran")
    return _result(
        "budget",
        "The signed budget was respected",
        problems,
        f"{run}/{signed['max_trials']} trials, {wall:.0f} s of {signed['max_wall_minutes']} min",
    )


def rule_no_attrition(inputs: GateInputs) -> RuleResult:
    allowed = int(inputs.edd.document["decision"].get("allowed_failed_trials", 0))
    bad = [
        f"{t.get('arm')}/{t.get('seed')} {t.get('status')}"
        for t in inputs.results.get("trials", [])
        if t.get("status") != "succeeded"
    ]
    attrition = inputs.analysis.get("attrition", [])
    # A succeeded trial without a usable metric (missing, NaN) is never "allowed": the
    # allowance is for trials that failed, and a lost metric hides which seeds broke.
    lost_metrics = [
        f"{a.get('arm')}/{a.get('seed')} {a.get('metric')}"
        for a in attrition
        if a.get("status") == "succeeded"
    ]
    problems: list[str] = []
    if len(bad) > allowed:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        problems.append(f"{len(bad)} trial(s) did not succeed (policy allows {allowed}): {shown}")
    if attrition and len(bad) > allowed:
        problems.append(f"{len(attrition)} unpaired trial(s) in the analysis")
    if lost_metrics:
        shown = ", ".join(lost_metrics[:5])
        more = f" and {len(lost_metrics) - 5} more" if len(lost_metrics) > 5 else ""
        problems.append(
            f"{len(lost_metrics)} metric value(s) missing or not finite in succeeded "
            f"trials: {shown}{more}"
        )
    result = _result(
        "no-attrition",
        "No attrition and no failed trials beyond what the EDD allows",
        problems,
        f"{len(bad)} non-succeeded trial(s), {allowed} allowed",
    )
    # Every attempt is accounted for in the gate, pass or fail.
    attempts = attempts_summary(inputs.results.get("trials", []))
    return dataclasses.replace(result, evidence=f"{result.evidence}; {attempts}")


def rule_provenance(inputs: GateInputs) -> RuleResult:
    problems: list[str] = []
    prov = inputs.results.get("provenance", {})
    if not prov.get("fingerprint"):
        problems.append("results.json records no provenance fingerprint")
    git = prov.get("git", {}) or {}
    if git.get("dirty") and not git.get("allow_dirty"):
        problems.append("the work tree was dirty")
    if git.get("dirty") and git.get("allow_dirty"):
        problems.append("the work tree was dirty (--allow-dirty): code is not pinned by a commit")
    if prov.get("dvc_status_clean") is False:
        problems.append("DVC-tracked data did not match dvc.lock")
    if inputs.plan_error and "confound" in inputs.plan_error.lower():
        problems.append("a confound was found in the plan")
    trials = inputs.results.get("trials", [])
    problems += node_environment_problems(prov, trials)
    shards = {t.get("shard") for t in trials} - {None}
    nodes = {str((t.get("node") or {}).get("node_id")) for t in trials if t.get("node")}
    on_nodes = f", {len(nodes)} node(s) with one environment" if nodes else ""
    return _result(
        "provenance",
        "No confound; provenance identical across all trials and shards",
        problems,
        f"commit {str(git.get('commit'))[:12]}, clean tree, {max(len(shards), 1)} shard(s) "
        f"with one provenance fingerprint{on_nodes}",
    )


def node_environment_problems(
    provenance: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Trials a cluster ran must share one environment: the one the run's provenance records.

    Each node reports the fingerprint of its own software (python, lock, image); the
    provenance fingerprint (and so the trial cache) assumes the driver's.
    """
    from audit.provenance._hashing import sha256_json

    by_environment: dict[str, list[str]] = {}
    for trial in trials:
        node = trial.get("node") or {}
        if node.get("environment"):
            where = f"{trial.get('trial_id')} on {node.get('hostname') or node.get('node_id')}"
            by_environment.setdefault(str(node["environment"]), []).append(where)
    if not by_environment:
        return []
    env = provenance.get("environment") or {}
    recorded = sha256_json(
        {
            "python": env.get("python"),
            "lock": env.get("lock_sha256") or env.get("distributions_sha256"),
            "image": env.get("image_digest"),
        }
    )
    problems = []
    if len(by_environment) > 1:
        groups = "; ".join(
            f"{fingerprint[:12]}: {', '.join(where[:3])}"
            + (f" and {len(where) - 3} more" if len(where) > 3 else "")
            for fingerprint, where in sorted(by_environment.items())
        )
        problems.append(f"trials ran in {len(by_environment)} different environments ({groups})")
    elif recorded not in by_environment:
        (fingerprint,) = by_environment
        problems.append(
            f"trials ran in environment {fingerprint[:12]}, not the {recorded[:12]} "
            "the run's provenance records"
        )
    return problems


def attempts_summary(trials: Sequence[Mapping[str, Any]]) -> str:
    """Attempts per trial, naming every trial that needed more than one or lost one."""
    counts: dict[int, int] = {}
    notable = []
    for trial in trials:
        attempts = int(trial.get("attempts") or 0)
        counts[attempts] = counts.get(attempts, 0) + 1
        lost = sum(1 for a in trial.get("attempt_log") or [] if a.get("outcome") == "lost")
        if attempts > 1 or lost:
            notable.append(
                f"{trial.get('trial_id')}: {attempts} attempt(s)"
                + (f", {lost} lost to infrastructure" if lost else "")
            )
    text = ", ".join(f"{n} trial(s) x {a}" for a, n in sorted(counts.items()))
    if notable:
        text += "; " + ", ".join(notable[:10])
        text += f" and {len(notable) - 10} more" if len(notable) > 10 else ""
    return f"attempts: {text}"


def rule_reproducible(inputs: GateInputs) -> RuleResult:
    repro = inputs.results.get("reproducibility")
    if not repro:
        return _rule(
            "reproducible",
            "The determinism re-run is within tolerance",
            False,
            "no reproducibility re-run was recorded",
        )
    problems = [] if repro.get("passed") else [repro.get("reason") or "re-run outside tolerance"]
    return _result(
        "reproducible",
        "The determinism re-run is within tolerance",
        problems,
        f"{repro.get('arm')}/{repro.get('seed')} re-ran within tolerance",
    )


def _verdicts(analysis: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (str(c.get("target")), str(c.get("metric"))): str(c.get("verdict"))
        for c in analysis.get("comparisons", [])
    }


def rule_claims(inputs: GateInputs) -> RuleResult:
    document = inputs.edd.document
    primary = document["metrics"]["primary"]["name"]
    verdicts = _verdicts(inputs.analysis)
    problems: list[str] = []
    met: list[str] = []
    for claim in document["decision"]["claims"]:
        key = (claim["target"], claim.get("metric", primary))
        verdict = verdicts.get(key)
        if verdict == claim["claim"]:
            met.append(f"{key[0]} {claim['claim']} on {key[1]}")
        else:
            problems.append(f"{key[0]} on {key[1]}: claimed {claim['claim']}, verdict {verdict}")
    if not inputs.analysis.get("decision", {}).get("passed"):
        reasons = inputs.analysis.get("decision", {}).get("reasons", [])
        problems.extend(f"analysis: {r}" for r in reasons)
    if inputs.recompute_error:
        problems.append(
            f"analysis cannot be recomputed from results.json: {inputs.recompute_error}"
        )
    if inputs.recomputed_analysis is not None:
        problems.extend(_analysis_drift(inputs.analysis, inputs.recomputed_analysis))
    return _result(
        "claims",
        "Every claim in the EDD is met by its decision rule",
        problems,
        "; ".join(met) or "no claims",
    )


def _analysis_drift(given: Mapping[str, Any], recomputed: Mapping[str, Any]) -> list[str]:
    """A hand-edited analysis.json must not pass: compare it with a fresh computation.

    Each difference names the place in analysis.json (a JSON pointer) that was edited.
    """
    problems: list[str] = []
    if bool(given.get("decision", {}).get("passed")) != bool(
        recomputed.get("decision", {}).get("passed")
    ):
        problems.append(
            "analysis.json /decision/passed differs from the decision recomputed from the evidence"
        )
    fresh = {(c["target"], c["metric"]): c for c in recomputed.get("comparisons", [])}
    seen = set()
    for index, comparison in enumerate(given.get("comparisons", [])):
        key = (comparison.get("target"), comparison.get("metric"))
        seen.add(key)
        other = fresh.get(key)
        where = f"analysis.json /comparisons/{index}"
        if other is None:
            problems.append(f"{where} ({key[0]} on {key[1]}) is not in the recomputed analysis")
            continue
        if comparison.get("verdict") != other.get("verdict"):
            problems.append(
                f"{where}/verdict for {key[0]} on {key[1]} is {comparison.get('verdict')!r}, "
                f"recomputed {other.get('verdict')!r}"
            )
        for pointer in _DECISION_NUMBERS:
            if not _close(_at(comparison, pointer), _at(other, pointer)):
                problems.append(
                    f"{where}/{pointer} for {key[0]} on {key[1]} differs from the recomputed one"
                )
    for key in sorted(set(fresh) - seen, key=str):
        problems.append(f"analysis.json lacks the comparison {key[0]} on {key[1]} (removed?)")
    return problems


# The numbers each verdict rests on (and the report shows next to it), all recomputed by
# the gate's cheap recomputation: a hand edit of any of them is named.
_DECISION_NUMBERS = (
    "delta/value",
    "n",
    "p_value/value",
    "claim_bound/value",
    "ci/low",
    "ci/high",
)


def _at(document: Mapping[str, Any], pointer: str) -> object:
    value: object = document
    for part in pointer.split("/"):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _close(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def rule_tracking(inputs: GateInputs) -> RuleResult:
    evidence = inputs.tracking
    assert evidence is not None
    problems: list[str] = []
    if evidence.unsealed_trials:
        shown = ", ".join(evidence.unsealed_trials[:5])
        problems.append(f"{len(evidence.unsealed_trials)} trial(s) not sealed: {shown}")
    if not evidence.verify_passed:
        problems.append("track verify failed: " + "; ".join(evidence.problems[:5]))
    if evidence.differences:
        more = len(evidence.differences) - 10
        problems.append(
            "results.json differs from the sealed runs: "
            + "; ".join(evidence.differences[:10])
            + (f"; and {more} more" if more > 0 else "")
        )
    return _result(
        "tracking-sealed",
        "Every trial is sealed, equals its sealed run, and the ledger verifies",
        problems,
        f"all trials sealed on {evidence.uri} and equal to their sealed runs; ledger verified",
    )


RULES: tuple[Rule, ...] = (
    rule_edd_verified,
    rule_protocol_as_signed,
    rule_budget,
    rule_no_attrition,
    rule_provenance,
    rule_reproducible,
    rule_claims,
)


def decide(inputs: GateInputs) -> GateResult:
    rules = [rule(inputs) for rule in RULES]
    if inputs.tracking is not None:
        rules.append(rule_tracking(inputs))
    edd = EddRef(inputs.edd.id, inputs.edd.version, inputs.edd.digest)
    return GateResult(
        passed=all(r.passed for r in rules),
        rules=tuple(rules),
        edd=edd,
        results_sha256=inputs.results_sha256,
    )
