"""Checks an EDD must pass beyond its JSON Schema; each finding is (pointer, message).

Runs only on schema-valid documents, so it may index fields the schema requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from audit.edd.overrides import (
    OverrideSyntaxError,
    baseline_value,
    is_missing,
    parse_override,
)
from audit.edd.trials import planned_arm_count, planned_arm_names, planned_trial_count
from audit.errors import escape_pointer_token

Problem = tuple[str, str]


def semantic_problems(document: dict[str, Any], *, at: datetime | None = None) -> list[Problem]:
    """Every semantic problem; with `at`, also whether not_after has passed at that time."""
    problems: list[Problem] = []
    problems += _names(document)
    problems += _data(document)
    problems += _overrides(document)
    problems += _design(document)
    problems += _metrics_and_claims(document)
    problems += _metrics_source(document)
    problems += _reproducibility(document)
    problems += _budget(document)
    problems += _resources(document)
    problems += _not_after(document, at)
    return problems


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time with an explicit offset (Z or +hh:mm); ValueError otherwise."""
    if "T" not in text.upper():
        raise ValueError(text)
    value = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(text)
    return value


def _names(document: dict[str, Any]) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    protocol = document["protocol"]
    arms = planned_arm_names(document)
    generated = set(arms[: len(arms) - len(protocol.get("references", []))])
    for kind in ("components", "references"):
        for index, item in enumerate(protocol.get(kind, [])):
            pointer = f"/protocol/{kind}/{index}/name"
            name = item["name"]
            if name == "baseline":
                yield pointer, "'baseline' is reserved for the baseline arm"
            elif kind == "references" and name in generated:
                yield pointer, f"{name!r} is already the name of an arm of this design"
            elif name in seen:
                yield pointer, f"duplicate arm name {name!r} (also at {seen[name]})"
            else:
                seen[name] = pointer


def _data(document: dict[str, Any]) -> Iterator[Problem]:
    """One source per entry, a lakeFS URI of the right shape, no entry declared twice."""
    from audit.provenance.lakefs import LakeFSUri

    seen: set[str] = set()
    for index, entry in enumerate(document["data"]):
        pointer = f"/data/{index}"
        if "lakefs" in entry:
            if "path" in entry:
                yield pointer, "an entry names either a path or a lakefs URI, not both"
            elif "tracked_by" in entry:
                yield f"{pointer}/tracked_by", "tracked_by applies to a path, not a lakefs URI"
            try:
                LakeFSUri.parse(entry["lakefs"])
            except ValueError as error:
                yield f"{pointer}/lakefs", str(error)
        key = str(entry.get("lakefs") or entry.get("path"))
        if key in seen:
            yield pointer, f"{key!r} is declared twice"
        seen.add(key)


def _overrides(document: dict[str, Any]) -> Iterator[Problem]:
    protocol = document["protocol"]
    baseline = protocol["baseline"]
    lists: list[tuple[str, list[str]]] = []
    for index, component in enumerate(protocol["components"]):
        for field in ("ablate", "replace"):
            if field in component:
                lists.append((f"/protocol/components/{index}/{field}", component[field]))
    for index, reference in enumerate(protocol.get("references", [])):
        lists.append((f"/protocol/references/{index}/overrides", reference["overrides"]))
    for pointer, overrides in lists:
        yield from _override_list(pointer, overrides, baseline)


def _override_list(pointer: str, overrides: list[str], baseline: Any) -> Iterator[Problem]:
    keys: set[str] = set()
    for index, text in enumerate(overrides):
        where = f"{pointer}/{index}"
        try:
            override = parse_override(text)
        except OverrideSyntaxError as error:
            yield where, str(error)
            continue
        if override.key in keys:
            yield where, f"key {override.key!r} is overridden twice"
        keys.add(override.key)
        current = baseline_value(baseline, override.path)
        if is_missing(current):
            yield where, f"key {override.key!r} does not exist in protocol.baseline"
        elif _same_value(current, override.scalar()):
            yield where, f"override {text!r} does not change the baseline value"


def _same_value(baseline: Any, value: Any) -> bool:
    if isinstance(baseline, (dict, list)) or is_missing(value):
        return False
    if isinstance(baseline, bool) or isinstance(value, bool):
        return baseline is value
    return bool(type(baseline) is type(value) and baseline == value) or (
        isinstance(baseline, (int, float))
        and isinstance(value, (int, float))
        and float(baseline) == float(value)
    )


def _design(document: dict[str, Any]) -> Iterator[Problem]:
    protocol = document["protocol"]
    if protocol["design"] == "replace-one":
        for index, component in enumerate(protocol["components"]):
            if "replace" not in component:
                yield (
                    f"/protocol/components/{index}",
                    "design replace-one needs 'replace' overrides for every component",
                )
    if protocol.get("overrides_via", "argv") == "argv" and "{overrides}" not in protocol["command"]:
        yield "/protocol/command", 'must contain the item "{overrides}" when overrides_via is argv'


def _metrics_source(document: dict[str, Any]) -> Iterator[Problem]:
    source = document["protocol"].get("metrics_source")
    if source is None:
        return
    pointer, kind = "/protocol/metrics_source", source["kind"]
    with_dir = ("dvclive", "tensorboard")
    if kind == "tensorboard" and "dir" not in source:
        yield (
            pointer,
            "a tensorboard source needs dir: the log directory inside the trial directory",
        )
    if "dir" in source and kind not in with_dir:
        yield f"{pointer}/dir", f"dir is for the dvclive and tensorboard sources, not {kind}"
    rules = source.get("metrics") or {}
    if rules and kind not in with_dir:
        yield (
            f"{pointer}/metrics",
            f"metrics rules are for the dvclive and tensorboard sources, not {kind}",
        )
    metrics = document["metrics"]
    declared = {metrics["primary"]["name"]} | {m["name"] for m in metrics.get("secondary", [])}
    for name, rule in rules.items():
        at = f"{pointer}/metrics/{escape_pointer_token(name)}"
        reduce = rule.get("reduce", "last")
        if name not in declared:
            yield at, f"{name!r} is not a metric declared under metrics"
        if "last_k" in rule and reduce != "mean":
            yield f"{at}/last_k", "last_k goes with reduce: mean"
        if reduce != "last" and rule.get("key", name) == name:
            # The history is logged under its key, whose latest value MLflow reports.
            field = "key" if "key" in rule else "reduce"
            yield (
                f"{at}/{field}",
                (
                    f"a metric reduced by {reduce} needs a name other than its key {name!r}, "
                    "whose history is logged as it is"
                ),
            )


def _metrics_and_claims(document: dict[str, Any]) -> Iterator[Problem]:
    metrics = document["metrics"]
    names = [metrics["primary"]["name"]] + [m["name"] for m in metrics.get("secondary", [])]
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            yield f"/metrics/secondary/{index - 1}/name", f"metric {name!r} is listed twice"
        seen.add(name)
    protocol = document["protocol"]
    targets = {c["name"] for c in protocol["components"]}
    targets |= {r["name"] for r in protocol.get("references", [])}
    claimed: set[tuple[str, str]] = set()
    for index, claim in enumerate(document["decision"]["claims"]):
        pointer = f"/decision/claims/{index}"
        metric = claim.get("metric", names[0])
        if claim["target"] not in targets:
            yield f"{pointer}/target", f"{claim['target']!r} is not a component or reference arm"
        if metric not in seen:
            yield f"{pointer}/metric", f"metric {metric!r} is not declared under metrics"
        if (claim["target"], metric) in claimed:
            yield pointer, f"a second claim about {claim['target']!r} on {metric!r}"
        claimed.add((claim["target"], metric))
        if claim["claim"] == "improves" and "margin" in claim:
            yield f"{pointer}/margin", "margin applies to non-inferior claims; use min_effect"
        if "planning_effect" in claim and claim["planning_effect"] <= _boundary(claim):
            what = "min_effect" if claim["claim"] == "improves" else "-margin"
            yield (
                f"{pointer}/planning_effect",
                f"planning_effect {claim['planning_effect']:g} must exceed the claim boundary "
                f"({what} = {_boundary(claim):g}): at the boundary no number of seeds gives power",
            )


def _boundary(claim: dict[str, Any]) -> float:
    if claim["claim"] == "non-inferior":
        return -float(claim.get("margin", 0.0))
    return float(claim.get("min_effect", 0.0))


PLANNING_POWER = 0.8


def planning_warnings(document: dict[str, Any]) -> list[Problem]:
    """Claims whose declared seeds give < 80% power at their planning effect (pilot_sd given).

    Warnings, not problems: a signed EDD may knowingly run a small study. Imports scipy
    only when some claim declares both planning_effect and pilot_sd.
    """
    seeds = len(document["protocol"]["seeds"])
    alpha = float(document["decision"]["alpha"])
    found: list[Problem] = []
    for index, claim in enumerate(document["decision"]["claims"]):
        pointer = f"/decision/claims/{index}"
        if "planning_effect" not in claim:
            continue
        shift = float(claim["planning_effect"]) - _boundary(claim)
        if "pilot_sd" not in claim:
            found.append(
                (
                    pointer,
                    "planning_effect without pilot_sd: power cannot be checked before the run",
                )
            )
            continue
        if shift <= 0:
            continue  # a semantic problem, reported by semantic_problems
        from audit.stats.power import sample_size_hint, t_power

        sd = float(claim["pilot_sd"])
        power = t_power(seeds, shift, sd, alpha)
        if power < PLANNING_POWER:
            needed = sample_size_hint(sd, shift, alpha, power=PLANNING_POWER, two_sided=False)
            want = needed.seeds_needed if needed.seeds_needed is not None else "more than 1000"
            found.append(
                (
                    pointer,
                    f"{seeds} seeds give {power:.0%} power at planning_effect "
                    f"{claim['planning_effect']:g} (pilot_sd {sd:g}, one-sided t-test at alpha "
                    f"{alpha:g}); {want} seeds give {PLANNING_POWER:.0%}",
                )
            )
    return found


def _reproducibility(document: dict[str, Any]) -> Iterator[Problem]:
    check = document.get("reproducibility")
    if check is None:
        return
    protocol = document["protocol"]
    arms = planned_arm_names(document)
    if check.get("arm", "baseline") not in arms:
        yield (
            "/reproducibility/arm",
            f"{check['arm']!r} is not an arm of this design ({', '.join(arms)})",
        )
    if "seed" in check and check["seed"] not in protocol["seeds"]:
        yield "/reproducibility/seed", f"seed {check['seed']} is not in protocol.seeds"
    yield from _reproducibility_metrics(document, check)


def _reproducibility_metrics(document: dict[str, Any], check: dict[str, Any]) -> Iterator[Problem]:
    """`exclude` and `metric_tolerance` name declared metrics; the primary is always compared."""
    metrics = document["metrics"]
    primary = metrics["primary"]["name"]
    declared = {primary, *(m["name"] for m in metrics.get("secondary", []))}
    excluded = check.get("exclude", [])
    for index, name in enumerate(excluded):
        pointer = f"/reproducibility/exclude/{index}"
        if name == primary:
            yield (
                pointer,
                f"the primary metric {name!r} is what the re-run checks; it cannot be excluded",
            )
        elif name not in declared:
            yield pointer, f"metric {name!r} is not declared under metrics"
    for name in check.get("metric_tolerance", {}):
        pointer = f"/reproducibility/metric_tolerance/{escape_pointer_token(name)}"
        if name not in declared:
            yield pointer, f"metric {name!r} is not declared under metrics"
        elif name in excluded:
            yield pointer, f"metric {name!r} is excluded, so its tolerance is never used"


def _budget(document: dict[str, Any]) -> Iterator[Problem]:
    planned = planned_trial_count(document)
    limit = document["budget"]["max_trials"]
    if planned > limit:
        arms = planned_arm_count(document)
        seeds = len(document["protocol"]["seeds"])
        rerun = planned - arms * seeds
        yield (
            "/budget/max_trials",
            f"planned {planned} trials ({arms} arms x {seeds} seeds + {rerun} re-run) "
            f"exceed max_trials {limit}",
        )


def _resources(document: dict[str, Any]) -> Iterator[Problem]:
    """A cluster engine shares a CPU or GPU between trials, but never splits more than one."""
    resources = document["protocol"].get("resources", {})
    for name in ("cpus", "gpus"):
        value = resources.get(name)
        if isinstance(value, int | float) and value > 1 and value != int(value):
            yield (
                f"/protocol/resources/{name}",
                f"{value:g} {name} per trial: above 1 it must be a whole number",
            )


def _not_after(document: dict[str, Any], at: datetime | None) -> Iterator[Problem]:
    try:
        deadline = parse_rfc3339(document["not_after"])
    except ValueError:
        yield "/not_after", "not an RFC 3339 date-time with a time zone (e.g. 2030-01-31T00:00:00Z)"
        return
    if at is not None and deadline <= at.astimezone(timezone.utc):
        yield "/not_after", f"the EDD expired at {document['not_after']}"
