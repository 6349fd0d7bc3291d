"""The EDD's decision rule applied to the evidence: a verdict per comparison, then the decision.

Conservative by construction: attrition, an unreachable seed floor or too many failed
trials can only turn a positive answer into a negative one, never the other way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

POSITIVE = ("improves", "non-inferior")


@dataclass(frozen=True)
class Claim:
    """One claim of the EDD decision rule, with its metric resolved."""

    index: int
    target: str
    metric: str
    claim: str  # "improves" | "non-inferior"
    min_effect: float
    margin: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "target": self.target,
            "metric": self.metric,
            "claim": self.claim,
            "min_effect": self.min_effect,
            "margin": self.margin,
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
        )
        for index, raw in enumerate(document["decision"]["claims"])
    ]


@dataclass(frozen=True)
class Evidence:
    """What the judge needs about one comparison, in the metric's good direction."""

    n: int
    goal: str
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    p_adjusted: float | None
    floor_reachable: bool
    seeds_needed: int
    attrition: int

    def good(self) -> tuple[float | None, float | None, float | None]:
        """(delta, CI low, CI high) with signs flipped for minimize, so larger is better."""
        if self.goal == "maximize":
            return self.delta, self.ci_low, self.ci_high
        return _negate(self.delta), _negate(self.ci_high), _negate(self.ci_low)


def _negate(value: float | None) -> float | None:
    return None if value is None else -value


@dataclass
class Judgement:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    evidence_verdict: str | None = None  # what the numbers alone would have said


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _check(ok: bool, label: str, value: float | None, sign: str, bound: str) -> tuple[bool, str]:
    negated = {"<": ">=", ">": "<=", ">=": "<"}[sign]
    return ok, f"{label} {_fmt(value)} {sign if ok else negated} {bound}"


def _checks(claim: Claim, ev: Evidence, alpha: float) -> list[tuple[bool, str]]:
    delta, low, _high = ev.good()
    p_ok = ev.p_adjusted is not None and ev.p_adjusted < alpha
    ci_label = f"{ev.level:.0%} CI lower bound (good direction)"
    if claim.claim == "improves":
        return [
            _check(p_ok, "adjusted p", ev.p_adjusted, "<", f"alpha {alpha:g}"),
            _check(low is not None and low > 0, ci_label, low, ">", "0"),
            _check(
                delta is not None and delta >= claim.min_effect,
                "effect (good direction)",
                delta,
                ">=",
                f"min_effect {claim.min_effect:g}",
            ),
        ]
    margin = claim.margin or 0.0
    return [
        _check(low is not None and low > -margin, ci_label, low, ">", f"-margin {-margin:g}"),
        _check(p_ok, "adjusted non-inferiority p", ev.p_adjusted, "<", f"alpha {alpha:g}"),
    ]


def judge(claim: Claim | None, ev: Evidence, alpha: float) -> Judgement:
    """Verdict of one comparison under its claim (or `no-claim`), with every reason."""
    if claim is None:
        return Judgement("no-claim", ["no claim in the EDD for this comparison (descriptive)"])
    checks = _checks(claim, ev, alpha)
    reasons = [text for _, text in checks]
    evidence_verdict = claim.claim if all(ok for ok, _ in checks) else "not-shown"
    verdict = evidence_verdict
    if not ev.floor_reachable:
        verdict = "underpowered"
        reasons.append(
            f"{ev.n} paired seeds cannot reach the corrected threshold; "
            f"at least {ev.seeds_needed} are needed, so no positive verdict is possible"
        )
    if ev.attrition:
        verdict = "attrition"
        reasons.append(
            f"{ev.attrition} planned trial(s) of this comparison have no usable value; "
            "attrition blocks a positive verdict"
        )
    return Judgement(verdict, reasons, evidence_verdict)


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "summary": self.summary}


def decide(
    judged: Sequence[tuple[Claim, Judgement]],
    *,
    failed_trials: int,
    allowed_failed_trials: int,
    reproducibility: Mapping[str, Any] | None,
) -> Decision:
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
    return Decision(passed, reasons, summary)
