"""The JSON report: a structured summary of the same facts the Markdown shows.

Strings are kept as they are (JSON has no markup to inject into); consumers
that render them must escape them, as the Markdown and HTML renderers do.
"""

from __future__ import annotations

import json
from typing import Any

from audit import __version__
from audit.report.inputs import ReportInputs
from audit.report.links import mlflow_run_url, safe_http_base
from audit.report.markdown import claim_judged
from audit.report.numbers import as_number, estimate_value
from audit.report.verdict import Verdict

SCHEMA = "mlaudit/report/v1"


def _comparison(c: dict[str, Any]) -> dict[str, Any]:
    ci = c.get("ci") or {}
    return {
        "target": c.get("target"),
        "kind": c.get("kind"),
        "metric": c.get("metric"),
        "goal": c.get("goal"),
        "primary": c.get("primary"),
        "candidate_arm": c.get("candidate_arm"),
        "comparator_arm": c.get("comparator_arm"),
        "n": c.get("n"),
        "delta": estimate_value(c.get("delta")),
        "relative": estimate_value(c.get("relative")),
        "ci": {
            "low": as_number(ci.get("low")),
            "high": as_number(ci.get("high")),
            "level": as_number(ci.get("level")),
        },
        "p_value": estimate_value(c.get("p_value")),
        "p_adjusted": estimate_value(c.get("p_adjusted")),
        "effect_size": estimate_value(c.get("effect_size")),
        "claim": c.get("claim"),
        "claim_shown": claim_judged(c),
        "verdict": c.get("verdict"),
        "reasons": list(c.get("reasons") or []),
    }


def _trials(results: dict[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for t in results.get("trials", []):
        counts[str(t.get("status"))] = counts.get(str(t.get("status")), 0) + 1
    failed = [
        {k: t.get(k) for k in ("trial_id", "arm", "seed", "status", "exit_code", "reason")}
        for t in results.get("trials", [])
        if t.get("status") != "succeeded"
    ]
    return {"total": len(results.get("trials", [])), "by_status": counts, "not_succeeded": failed}


def _mlflow(results: dict[str, Any]) -> dict[str, Any] | None:
    tracking = results.get("tracking") or {}
    base = safe_http_base(tracking.get("uri"))
    if base is None:
        return None
    runs = {}
    for t in results.get("trials", []):
        url = mlflow_run_url(base, tracking.get("experiment_id"), t.get("mlflow_run_id"))
        if url:
            runs[str(t.get("trial_id"))] = url
    return {"base": base, "runs": runs}


def _decision(verdict: Verdict) -> dict[str, Any]:
    """The gate's result: the one decision (state "not-gated" without a gate result)."""
    gate = verdict.gate
    return {
        "state": verdict.state,
        "passed": verdict.state == "passed",
        "summary": verdict.summary(),
        "failure_kinds": sorted({r.kind for r in gate.failed_rules}) if gate else [],
        "rules": [
            {"rule": r.rule, "kind": r.kind, "passed": r.passed, "evidence": r.evidence}
            for r in (gate.rules if gate else ())
        ],
    }


def build_summary(inputs: ReportInputs, verdict: Verdict | None = None) -> dict[str, Any]:
    analysis, results = inputs.analysis, inputs.results
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "generator": f"mlaudit {__version__}",
        "edd": {k: analysis["edd"].get(k) for k in ("id", "version", "digest")},
        "results_sha256": analysis["results_sha256"],
        "decision": _decision(verdict or Verdict(None)),
        # What the statistics alone said; the decision above is the gate's.
        "statistics": {
            "claims_supported": bool(analysis["decision"]["passed"]),
            "summary": analysis["decision"].get("summary"),
            "reasons": list(analysis["decision"].get("reasons", [])),
        },
        "alpha": analysis["alpha"],
        "correction": analysis["correction"],
        "comparisons": [_comparison(c) for c in analysis["comparisons"]],
        "attrition": list(analysis["attrition"]),
        "checkpoint": inputs.checkpoint,
    }
    if results is not None:
        summary.update(
            approvals=list(results.get("approvals") or []),
            trust=results.get("trust"),
            provenance=results.get("provenance"),
            reproducibility=results.get("reproducibility"),
            budget=results.get("budget"),
            trials=_trials(results),
            mlflow=_mlflow(results),
        )
    return summary


def render_json(inputs: ReportInputs, verdict: Verdict | None = None) -> str:
    summary = build_summary(inputs, verdict)
    return json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
