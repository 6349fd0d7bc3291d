"""The determinism re-run compares the declared metrics, each within its own tolerance."""

from __future__ import annotations

from audit.protocol.determinism import ReproducibilityRule, compare_metrics
from audit.protocol.trial import TrialOutcome

METRICS = {
    "primary": {"name": "macro_f1", "goal": "maximize"},
    "secondary": [
        {"name": "log_loss", "goal": "minimize"},
        {"name": "train_seconds", "goal": "minimize"},
    ],
}
ORIGINAL = {"macro_f1": 0.91, "log_loss": 0.3, "train_seconds": 1.87, "epochs_run": 12.0}
RERUN = TrialOutcome(
    "succeeded",
    {"macro_f1": 0.91, "log_loss": 0.3 + 1e-7, "train_seconds": 1.55, "epochs_run": 9.0},
)


def _rule(block: dict | None) -> ReproducibilityRule:
    document = {"metrics": METRICS}
    if block is not None:
        document["reproducibility"] = block
    return ReproducibilityRule.from_document(document)


def test_undeclared_metrics_are_never_compared():
    result = compare_metrics(ORIGINAL, RERUN, _rule({"exclude": ["train_seconds"]}))
    assert set(result["metrics"]) == {"macro_f1", "log_loss"}
    assert "epochs_run" not in result["reason"]


def test_a_declared_timing_metric_can_be_excluded():
    failing = compare_metrics(
        ORIGINAL, RERUN, _rule({"metric_tolerance": {"log_loss": {"abs": 1e-6}}})
    )
    assert failing["passed"] is False
    assert "metric 'train_seconds' differs: 1.87 vs 1.55" in failing["reason"]
    block = {"exclude": ["train_seconds"], "metric_tolerance": {"log_loss": {"abs": 1e-6}}}
    passing = compare_metrics(ORIGINAL, RERUN, _rule(block))
    assert passing["passed"] is True, passing["reason"]
    assert passing["excluded"] == ["train_seconds"]
    assert "not compared: train_seconds" in passing["reason"]


def test_per_metric_tolerance_overrides_the_default():
    block = {"tolerance": {"abs": 0.0}, "exclude": ["train_seconds"]}
    strict = compare_metrics(ORIGINAL, RERUN, _rule(block))
    assert strict["passed"] is False
    assert strict["metrics"]["log_loss"]["passed"] is False
    assert strict["metrics"]["macro_f1"]["passed"] is True
    block["metric_tolerance"] = {"log_loss": {"rel": 1e-5}}
    assert compare_metrics(ORIGINAL, RERUN, _rule(block))["passed"] is True


def test_every_failing_metric_is_named():
    result = compare_metrics(ORIGINAL, RERUN, _rule({}))
    assert "'log_loss'" in result["reason"]
    assert "'train_seconds'" in result["reason"]
