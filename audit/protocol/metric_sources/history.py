"""Histories to values: the last point as MLflow sees it, and the EDD's declared reductions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from audit.protocol.metric_sources import MetricPoint, MetricRule, MetricSource


def ordered(points: Sequence[MetricPoint]) -> list[MetricPoint]:
    """By step, then time: the order MLflow's 'latest value' (and track verify) uses."""
    return sorted(points, key=lambda p: (p.step, p.timestamp or 0))


def reduce(points: Sequence[MetricPoint], rule: MetricRule) -> float:
    """The trial's value of a (non-empty, ordered) history under the declared rule."""
    values = [p.value for p in points]
    if rule.reduce == "max":
        return max(values)
    if rule.reduce == "min":
        return min(values)
    if rule.reduce == "mean":
        tail = values[-(rule.last_k or len(values)) :]
        return math.fsum(tail) / len(tail)
    return values[-1]


def values_from_histories(
    source: MetricSource,
    histories: Mapping[str, Sequence[MetricPoint]],
    required: Sequence[str],
    where: str,
    summary: Mapping[str, float] | None = None,
) -> tuple[dict[str, float] | None, str | None]:
    """Every key's last value, plus each EDD metric by its rule; or what is missing.

    The last values go with the histories to MLflow, so the sealed run's latest value
    of every key equals the trial's; an EDD metric read by another reduction has a
    name of its own (semantics refuse a reduced metric named like its key).
    `summary` holds values logged without a history (DVCLive's plot=False).
    """
    metrics = dict(summary or {})
    metrics.update({key: points[-1].value for key, points in histories.items() if points})
    for name in required:
        rule = source.rule(name)
        points = histories.get(rule.key)
        if points:
            metrics[name] = reduce(points, rule)
        elif rule.reduce == "last" and rule.key in metrics:
            metrics[name] = metrics[rule.key]
        else:
            return None, f"{where} has no values for '{rule.key}' (the metric '{name}')"
    problem = next((k for k, v in metrics.items() if not math.isfinite(v)), None)
    if problem is not None:
        return None, f"{where}: metric '{problem}' is not finite ({metrics[problem]})"
    return metrics, None
