"""The EDD's decision rule applied to the evidence: a verdict per comparison, then the decision.

Rule version 2 (RULE_VERSION): a claim is a one-sided hypothesis about the effect in the
metric's good direction. `improves` by min_effect: H0 effect <= min_effect against
H1 effect > min_effect; `non-inferior` within margin: H0 effect <= -margin. Each claim
is tested at the EDD's alpha because the decision needs every claim (an
intersection-union test, Berger 1982). Conservative by construction: attrition, a
degenerate sample, too few pairs or too many failed trials can only turn a positive
answer into a negative one, never the other way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.stats.diagnostics import DEGENERATE_CAUSE

POSITIVE = ("improves", "non-inferior")
RULE_VERSION = 2
RULE_NAME = "mlaudit-claims/2"


@dataclass(frozen=True)
class Claim:
    """One claim of the EDD decision rule, with its metric resolved."""

    index: int
    target: str
    metric: str
    claim: str  # "improves" | "non-inferior"
    min_effect: float
    margin: float | None
    planning_effect: float | None = None
    pilot_sd: float | None = None

    @property
    def boundary(self) -> float:
        """The effect (good direction) the claim must be shown to exceed."""
        if self.claim == "non-inferior":
            return -(self.margin or 0.0)
        return self.min_effect

    def hypotheses(self) -> str:
        bound = f"{self.boundary:g}"
        return f"H0: effect (good direction) <= {bound} vs H1: effect > {bound}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "target": self.target,
            "metric": self.metric,
            "claim": self.claim,
            "min_effect": self.min_effect,
            "margin": self.margin,
            "boundary": self.boundary,
            "planning_effect": self.planning_effect,
            "pilot_sd": self.pilot_sd,
        }


def claims_from_edd(document: Mapping[str, Any]) -> list[Claim]:
    primary = str(document["metrics"]["primary"]["name"])
    return [
        Claim(
            index=index,
            target=str(raw["target"]),
            metric=str(raw.get("metric") or primary),
            claim=str(raw["claim"]),
            min_effect=float(raw.get("min_effect", 0.0)),
            margin=float(raw["margin"]) if raw.get("margin") is not None else None,
            planning_effect=_optional(raw.get("planning_effect")),
            pilot_sd=_optional(raw.get("pilot_sd")),
        )
        for index, raw in enumerate(document["decision"]["claims"])
    ]


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ComparisonEvidence:
    """What the judge needs about one comparison, in the metric's good direction."""

    n: int
    goal: str
    delta: float | None  # metric units, candidate - comparator
    p_value: float | None  # the claim test's one-sided p (H0 effect <= boundary)
    lower_bound: float | None  # one-sided (1 - alpha) lower bound, good direction
    floor_reachable: bool
    seeds_needed: int
    attrition: int
    degenerate: bool = False

    def good_delta(self) -> float | None:
        """The mean difference with its sign flipped for minimize, so larger is better."""
        if self.delta is None or self.goal == "maximize":
            return self.delta
        return -self.delta


@dataclass
class Judgement:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    evidence_verdict: str | None = None  # what the numbers alone would have said
    # Every condition a positive verdict needs, with whether it held: the report
    # marks them, so it never rebuilds the rule from the numbers itself.
    conditions: list[tuple[bool, str]] = field(default_factory=list)

    def conditions_json(self) -> list[dict[str, Any]]:
        return [{"held": held, "text": text} for held, text in self.conditions]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _check(ok: bool, label: str, value: float | None, sign: str, bound: str) -> tuple[bool, str]:
    negated = {"<": ">=", ">": "<=", ">=": "<"}[sign]
    return ok, f"{label} {_fmt(value)} {sign if ok else negated} {bound}"


def _checks(claim: Claim, ev: ComparisonEvidence, alpha: float) -> list[tuple[bool, str]]:
    bound = claim.boundary
    what = "min_effect" if claim.claim == "improves" else "-margin"
    p_ok = ev.p_value is not None and ev.p_value < alpha
    low_ok = ev.lower_bound is not None and ev.lower_bound > bound
    return [
        _check(
            p_ok,
            f"H0: effect <= {bound:g} vs H1: effect > {bound:g} (good direction): "
            "one-sided paired t-test p",
            ev.p_value,
            "<",
            f"alpha {alpha:g}",
        ),
        _check(
            low_ok,
            f"one-sided {1 - alpha:.0%} lower confidence bound",
            ev.lower_bound,
            ">",
            f"{what} {bound:g}",
        ),
    ]


def judge(claim: Claim | None, ev: ComparisonEvidence, alpha: float) -> Judgement:
    """Verdict of one comparison under its claim (or `no-claim`), with every reason."""
    if claim is None:
        return Judgement("no-claim", ["no claim in the EDD for this comparison (descriptive)"])
    checks = _checks(claim, ev, alpha)
    reasons = [text for _, text in checks]
    conditions = [
        *checks,
        (not ev.degenerate, "the paired differences vary with the seed"),
        (
            ev.floor_reachable,
            f"{ev.n} paired seed(s); the t-test needs at least {ev.seeds_needed}",
        ),
        (not ev.attrition, f"{ev.attrition} planned trial(s) without a usable value"),
    ]
    evidence_verdict = claim.claim if all(ok for ok, _ in checks) else "not-shown"
    verdict = evidence_verdict
    if ev.degenerate:
        verdict = "not-shown"
        reasons.append(f"blocked: {DEGENERATE_CAUSE}")
    if not ev.floor_reachable:
        verdict = "underpowered"
        reasons.append(
            f"{ev.n} paired seed(s): the t-test needs at least {ev.seeds_needed}, "
            "so no positive verdict is possible"
        )
    if ev.attrition:
        verdict = "attrition"
        reasons.append(
            f"{ev.attrition} planned trial(s) of this comparison have no usable value; "
            "attrition blocks a positive verdict"
        )
    return Judgement(verdict, reasons, evidence_verdict, conditions)


@dataclass(frozen=True)
class ClaimsDecision:
    """What the EDD's claims say, from the statistics alone (analysis.json's `decision`).

    Not the merge decision: the gate (audit.gate.decide -> GateResult) weighs this
    with the audit evidence and is the one verdict everything shows.
    """

    passed: bool
    reasons: list[str]
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "summary": self.summary}


def decide_claims(
    judged: Sequence[tuple[Claim, Judgement]],
    *,
    failed_trials: int,
    allowed_failed_trials: int,
    reproducibility: Mapping[str, Any] | None,
) -> ClaimsDecision:
    """Every claim supported and no study-level blocker (attrition, irreproducibility)."""
    reasons: list[str] = []
    supported = 0
    for claim, judgement in judged:
        ok = judgement.verdict in POSITIVE
        supported += ok
        head = f"{claim.target} ({claim.metric}) {claim.claim}: {judgement.verdict}"
        detail = "; ".join(judgement.reasons)
        reasons.append(f"{'supported' if ok else 'NOT supported'}: {head} ({detail})")
    blockers = 0
    if failed_trials > allowed_failed_trials:
        blockers += 1
        reasons.append(
            f"{failed_trials} trial(s) did not succeed, more than allowed_failed_trials="
            f"{allowed_failed_trials}"
        )
    if reproducibility is not None and reproducibility.get("passed") is False:
        blockers += 1
        reasons.append(
            "the reproducibility re-run of "
            f"{reproducibility.get('arm')}/{reproducibility.get('seed')} did not match"
        )
    total = len(judged)
    passed = total > 0 and supported == total and blockers == 0
    summary = f"{'passed' if passed else 'failed'}: {supported} of {total} claims supported"
    if blockers:
        summary += f"; {blockers} study-level blocker(s)"
    return ClaimsDecision(passed, reasons, summary)
