"""Builds schema-valid analysis.json / results.json documents for report tests and the benchmark.

Sizes and strings are parameters, so one builder serves the small fixture, the
200-trial benchmark and the hostile corpus (any string can be injected as a
component name, metric name, branch, error message...).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

RUN_BASE = "0123456789abcdef0123456789abcdef"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _run_id(index: int) -> str:
    return hashlib.md5(str(index).encode()).hexdigest()  # an id, not security


def build(
    components: list[str] | None = None,
    seeds: int = 8,
    primary: str = "score",
    secondary: str = "loss",
    failed: int = 1,
    passed: bool = True,
    reason: str = "CUDA out of memory",
    branch: str = "origin/main",
    principal: str = "owner@example.com",
    tracking_uri: str = "http://127.0.0.1:5000",
    reference: str = "production",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(analysis, results) for a leave-one-out study over `components`."""
    components = components if components is not None else ["a", "b"]
    edd_digest = _sha("edd")
    arms = [{"name": "baseline", "kind": "baseline", "overrides": []}]
    arms += [
        {"name": f"no-{c}", "kind": "component", "component": c, "overrides": [f"{c}=false"]}
        for c in components
    ]
    trials: list[dict[str, Any]] = []
    index = 0
    for arm in arms:
        for seed in range(seeds):
            status = "failed" if index < failed else "succeeded"
            trials.append(
                {
                    "trial_id": f"{arm['name']}/{seed}",
                    "arm": arm["name"],
                    "seed": seed,
                    "status": status,
                    "metrics": {}
                    if status == "failed"
                    else {primary: 0.8 + 0.001 * seed, secondary: 0.3 - 0.001 * seed},
                    "duration_seconds": 12.5 + seed,
                    "exit_code": 1 if status == "failed" else 0,
                    "reason": reason if status == "failed" else None,
                    "mlflow_run_id": _run_id(index),
                    "cached_from": None,
                }
            )
            index += 1
    comparisons = []
    for i, c in enumerate([*components, reference]):
        kind = "reference" if c == reference else "component"
        for metric, goal, is_primary in (
            (primary, "maximize", True),
            (secondary, "minimize", False),
        ):
            delta = 0.01 * (i + 1) * (1 if is_primary else -1)
            comparisons.append(
                {
                    "target": c,
                    "kind": kind,
                    "metric": metric,
                    "goal": goal,
                    "primary": is_primary,
                    "candidate_arm": "baseline",
                    "comparator_arm": f"no-{c}" if kind == "component" else c,
                    "n": seeds,
                    "delta": {"value": delta, "method": "mean of paired differences"},
                    "relative": {"value": delta / 0.8, "method": "delta / |mean comparator|"},
                    "ci": {
                        "low": delta - 0.004,
                        "high": delta + 0.004,
                        "level": 0.95,
                        "method": "bca-bootstrap",
                    },
                    "p_value": {"value": 0.0039 * (i + 1), "method": "exact permutation"},
                    "p_adjusted": {"value": min(1.0, 0.0078 * (i + 1)), "method": "holm"},
                    "effect_size": {"value": 1.2 / (i + 1), "method": "cohen d_z"},
                    "prob_superiority": {"value": 0.9, "method": "paired"},
                    "seed_floor": {"min_p": 2 / 2**seeds, "reachable": True},
                    "claim": (
                        {"claim": "improves", "min_effect": 0.005}
                        if is_primary and kind == "component"
                        else None
                    ),
                    "verdict": (
                        ("improves" if passed else "not-shown")
                        if is_primary and kind == "component"
                        else "no-claim"
                    ),
                    "reasons": [f"{c}: delta CI excludes 0 on {metric}"] if is_primary else [],
                }
            )
    analysis = {
        "schema": "mlaudit/analysis/v1",
        "edd": {"id": "toy-study", "version": 1, "digest": edd_digest},
        "results_sha256": _sha("results"),
        "alpha": 0.05,
        "confidence": 0.95,
        "correction": "holm",
        "metrics": [
            {"name": primary, "goal": "maximize", "primary": True},
            {"name": secondary, "goal": "minimize", "primary": False},
        ],
        "comparisons": comparisons,
        "attrition": [
            {"arm": t["arm"], "seed": t["seed"], "reason": t["reason"]}
            for t in trials
            if t["status"] != "succeeded"
        ],
        "decision": {
            "passed": passed,
            "reasons": [f"claim on {c}: {'shown' if passed else 'not shown'}" for c in components],
        },
    }
    results = {
        "schema": "mlaudit/results/v1",
        "edd": {
            "id": "toy-study",
            "version": 1,
            "digest": edd_digest,
            "document": {"id": "toy-study", "version": 1, "title": "Toy study for tests"},
        },
        "plan": {
            "design": "leave-one-out",
            "arms": arms,
            "seeds": list(range(seeds)),
            "command": ["python", "train.py"],
            "trial_count": len(trials),
        },
        "provenance": {
            "git": {"commit": "a" * 40, "tree": "b" * 40, "dirty": False},
            "data": {"data/train.csv": "md5:" + "c" * 32},
            "dvc_status_clean": True,
            "environment": {
                "python": "3.12.3",
                "platform": "linux-x86_64",
                "lock_file": "requirements.lock",
                "lock_sha256": "d" * 64,
                "image_digest": "sha256:" + "e" * 64,
                "distributions_sha256": "f" * 64,
            },
            "fingerprint": "1" * 64,
        },
        "trials": trials,
        "reproducibility": {
            "arm": "baseline",
            "seed": 0,
            "passed": True,
            "tolerance": {"abs": 1e-9},
            "metrics": {primary: {"original": 0.8, "rerun": 0.8, "abs_diff": 0.0}},
        },
        "budget": {
            "max_trials": 1000,
            "max_wall_minutes": 600,
            "trial_timeout_seconds": 60,
            "trials_run": len(trials),
            "wall_seconds": math.fsum(t["duration_seconds"] for t in trials),
            "exhausted": False,
        },
        "tracking": {"uri": tracking_uri, "experiment_id": "7", "parent_run_id": RUN_BASE},
        "approvals": [
            {
                "principal": principal,
                "role": "model-risk",
                "key_fingerprint": "SHA256:abcdefABCDEF0123456789+/xyz",
                "verdict": "valid",
            }
        ],
        "trust": {"ref": branch, "commit": "9" * 40, "protected": True},
    }
    return analysis, results


CHECKPOINT = {"origin": "mlaudit ledger http://127.0.0.1:5000", "size": 42, "root": "ab" * 32}


# The gate's rules as `mlaudit gate` writes them (audit/gate.py RULES and RULE_KINDS).
GATE_RULES = (
    ("edd-verified", "approvals"),
    ("protocol-as-signed", "protocol"),
    ("budget", "budget"),
    ("no-attrition", "attrition"),
    ("provenance", "provenance"),
    ("reproducible", "reproducibility"),
    ("claims", "claims"),
)


def gate_document(
    analysis: dict[str, Any], failing: dict[str, str] | None = None
) -> dict[str, Any]:
    """gate.json for `analysis`; `failing` maps rule ids to the evidence of their failure."""
    failing = failing or {}
    rules = [
        {
            "rule": rule,
            "kind": kind,
            "title": f"rule {rule}",
            "passed": rule not in failing,
            "evidence": failing.get(rule, f"{rule} holds"),
        }
        for rule, kind in GATE_RULES
    ]
    return {
        "schema": "mlaudit/gate/v1",
        "passed": not failing,
        "rules": rules,
        "reasons": [f"{r}: {e}" for r, e in failing.items()],
        "edd": {
            "id": analysis["edd"]["id"],
            "version": analysis["edd"]["version"],
            "digest": analysis["edd"]["digest"],
        },
        "results_sha256": analysis["results_sha256"],
    }
