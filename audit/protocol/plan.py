"""Expand an EDD's design into arms x seeds, resolve every arm's config, refuse confounds.

Which arms a design runs, their names and the comparisons it implies come from
audit/designs.py; this module resolves each arm's config and checks it for confounds.
Every arm runs the same seed list (paired seeds). Trials are ordered seed-major so
a partial run, or one CI shard, holds complete pairs as early as possible.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.designs import BASELINE, Comparison, DesignArm, UnknownDesign, design_of
from audit.errors import ConfoundError, Location, ProtocolError
from audit.protocol.overrides import apply_overrides, flatten, parse_overrides
from audit.provenance._hashing import canonical_json


@dataclass(frozen=True)
class Arm:
    name: str
    kind: str  # baseline | base | component | reference | factorial
    overrides: tuple[str, ...]
    component: str | None = None
    factors: Mapping[str, bool] | None = None
    config: Mapping[str, Any] = field(default_factory=dict, compare=False)
    pointer: str = field(default="/protocol", compare=False)  # where the EDD declares it

    @property
    def config_sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.config)).hexdigest()

    @classmethod
    def of(cls, arm: DesignArm) -> Arm:
        return cls(arm.name, arm.kind, arm.overrides, arm.component, arm.factors, {}, arm.pointer)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "component": self.component,
            "overrides": list(self.overrides),
            "config_sha256": self.config_sha256,
        }
        if self.factors is not None:
            data["factors"] = dict(self.factors)
        return data


@dataclass(frozen=True)
class Trial:
    arm: str
    seed: int
    index: int  # position in the plan; shards are taken round-robin over it

    @property
    def trial_id(self) -> str:
        return f"{self.arm}/{self.seed}"


@dataclass(frozen=True)
class Plan:
    design: str
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    command: tuple[str, ...]
    trials: tuple[Trial, ...]
    budget: Mapping[str, Any]
    reproducibility: tuple[str, int]  # (arm, seed) the determinism check re-runs
    comparisons: tuple[Comparison, ...] = ()  # what the design implies; results.json records it

    @property
    def trial_count(self) -> int:
        return len(self.trials)

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def _identity(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "arms": [arm.to_dict() for arm in self.arms],
            "seeds": list(self.seeds),
            "command": list(self.command),
            "trial_count": self.trial_count,
        }

    def to_dict(self) -> dict[str, Any]:
        """results.json's `plan` section (the runner adds `shard`)."""
        return {**self._identity(), "comparisons": [c.to_dict() for c in self.comparisons]}

    @property
    def sha256(self) -> str:
        """Identity of the plan (arms, configs, seeds, command) for journals and shards.

        The comparisons follow from the design and its arms, so they add nothing to the
        identity; leaving them out keeps journals written before they were recorded resumable.
        """
        return hashlib.sha256(canonical_json(self._identity())).hexdigest()


# -- expansion ------------------------------------------------------------------


def _check_replace_declared(
    design: str, components: Sequence[Mapping[str, Any]], source: str
) -> None:
    if design != "replace-one":
        return
    for index, component in enumerate(components):
        if not component.get("replace"):
            raise ProtocolError(
                f"design replace-one needs `replace` overrides for component {component['name']!r}",
                location=Location(source, f"/protocol/components/{index}"),
            )


def _override_locations(
    protocol: Mapping[str, Any], source: str
) -> list[tuple[Location, list[str]]]:
    found = []
    for i, component in enumerate(protocol["components"]):
        for key in ("ablate", "replace"):
            if key in component:
                found.append(
                    (Location(source, f"/protocol/components/{i}/{key}"), list(component[key]))
                )
    for i, reference in enumerate(protocol.get("references", [])):
        found.append(
            (Location(source, f"/protocol/references/{i}/overrides"), list(reference["overrides"]))
        )
    return found


def build_plan(document: Mapping[str, Any], *, source: str = "edd.yaml") -> Plan:
    """The full plan of an (already schema-valid) EDD document; raises on confounds."""
    protocol = document["protocol"]
    design = str(protocol["design"])
    components = list(protocol["components"])
    _check_unique([str(c["name"]) for c in components], "component", source)
    declared: dict[str, set[str]] = {}
    for location, texts in _override_locations(protocol, source):
        keys = {o.key for o in parse_overrides(texts, location=location)}
        declared.setdefault(location.pointer, set()).update(keys)
    _check_replace_declared(design, components, source)
    if protocol.get("overrides_via", "argv") == "argv" and "{overrides}" not in protocol["command"]:
        # Without it every arm would run the very same command: a silent non-ablation.
        raise ProtocolError(
            'the command must contain the item "{overrides}" when overrides_via is argv',
            location=Location(source, "/protocol/command"),
        )
    try:
        planned = design_of(protocol)
    except UnknownDesign as error:
        raise ProtocolError(str(error), location=Location(source, "/protocol/design")) from None
    _check_references(planned.arms, source)
    arms = [Arm.of(arm) for arm in planned.arms]
    if design in ("add-one", "full-factorial"):
        _check_disjoint_components(components, declared, source)
    baseline = apply_overrides(protocol["baseline"], [], arm=BASELINE)
    resolved = tuple(
        dataclasses.replace(
            a, config=apply_overrides(protocol["baseline"], a.overrides, arm=a.name)
        )
        for a in arms
    )
    for arm in resolved:
        check_confound(arm, baseline, source=source)
    seeds = tuple(int(s) for s in protocol["seeds"])
    trials = tuple(
        Trial(arm.name, seed, index)
        for index, (seed, arm) in enumerate(itertools.product(seeds, resolved))
    )
    return Plan(
        design=design,
        arms=resolved,
        seeds=seeds,
        command=tuple(protocol["command"]),
        trials=trials,
        budget=dict(document["budget"]),
        reproducibility=_reproducibility_target(document, resolved, seeds, source),
        comparisons=planned.comparisons,
    )


def _check_references(arms: Sequence[DesignArm], source: str) -> None:
    taken = {arm.name for arm in arms if arm.kind != "reference"}
    for arm in arms:
        if arm.kind != "reference":
            continue
        if arm.name in taken:
            raise ProtocolError(
                f"reference arm {arm.name!r} clashes with an arm the design creates",
                location=Location(source, arm.pointer.removesuffix("/overrides") + "/name"),
            )
        taken.add(arm.name)


def _check_unique(names: Sequence[str], what: str, source: str) -> None:
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ProtocolError(
                f"{what} name {name!r} is used twice",
                location=Location(source, f"/protocol/components/{index}/name"),
            )


def _reproducibility_target(
    document: Mapping[str, Any], arms: Sequence[Arm], seeds: Sequence[int], source: str
) -> tuple[str, int]:
    settings = document.get("reproducibility", {})
    default_arm = BASELINE if any(a.name == BASELINE for a in arms) else arms[0].name
    arm = str(settings.get("arm", default_arm))
    seed = int(settings.get("seed", seeds[0]))
    if arm not in {a.name for a in arms}:
        raise ProtocolError(
            f"reproducibility arm {arm!r} is not an arm of this design "
            f"({', '.join(a.name for a in arms)})",
            location=Location(source, "/reproducibility/arm"),
        )
    if seed not in seeds:
        raise ProtocolError(
            f"reproducibility seed {seed} is not in the seed list",
            location=Location(source, "/reproducibility/seed"),
        )
    return arm, seed


# -- confound check ---------------------------------------------------------------


def _related(a: str, b: str) -> bool:
    """Same key, or one is a subtree of the other (`model` covers `model.depth`)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _check_disjoint_components(
    components: Sequence[Mapping[str, Any]], declared: Mapping[str, set[str]], source: str
) -> None:
    keys = {
        str(c["name"]): declared.get(f"/protocol/components/{i}/ablate", set())
        for i, c in enumerate(components)
    }
    for (first, first_keys), (second, second_keys) in itertools.combinations(keys.items(), 2):
        for key in sorted(first_keys):
            clash = next((k for k in sorted(second_keys) if _related(key, k)), None)
            if clash is not None:
                raise ConfoundError(
                    f"components {first!r} and {second!r} both set key '{key}'; "
                    "combined arms could not attribute the difference",
                    location=Location(source, "/protocol/components"),
                )


def check_confound(arm: Arm, baseline: Mapping[str, Any], *, source: str = "edd.yaml") -> None:
    """The arm must differ from the baseline in exactly the keys its overrides declare."""
    declared = {o.key for o in parse_overrides(arm.overrides)}
    base_flat, arm_flat = flatten(baseline), flatten(arm.config)
    missing = object()
    changed = sorted(
        key
        for key in base_flat.keys() | arm_flat.keys()
        if base_flat.get(key, missing) != arm_flat.get(key, missing)
        or type(base_flat.get(key)) is not type(arm_flat.get(key))
    )
    owner = f"component {arm.component!r}" if arm.component else f"arm {arm.name!r}"
    if arm.kind in ("base", "factorial"):
        owner = "the ablated components"
    for key in changed:
        if not any(_related(key, d) for d in declared):
            before = base_flat.get(key, "<absent>")
            after = arm_flat.get(key, "<absent>")
            raise ConfoundError(
                f"arm {arm.name}: key '{key}' differs from the baseline ({before!r} -> "
                f"{after!r}) but {owner} does not declare it",
                location=Location(source, arm.pointer),
            )
    for key in sorted(declared):
        if not any(_related(key, c) for c in changed):
            raise ConfoundError(
                f"arm {arm.name}: {owner} declares key '{key}' but it does not change the "
                "baseline (the arm would measure nothing)",
                location=Location(source, arm.pointer),
            )
