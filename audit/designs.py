"""The ablation designs: which arms each design runs and which comparisons it implies.

The one place that knows the designs. The protocol engine resolves these arms into
configs (audit/protocol/plan.py), the EDD checks count and name them (audit/edd/trials.py),
and the statistics pair exactly these comparisons (audit/stats/analysis.py).

Arms (names are what results.json and the analysis use):
- leave-one-out: `baseline` + `no-<c>` (component c ablated)
- add-one: `baseline` + `base` (all components ablated) + `with-<c>` (only c on)
- replace-one: `baseline` + `replace-<c>` (c swapped for its declared alternative)
- full-factorial: every subset; all-on is `baseline`, others `no-<c1>+<c2>...`
- plus each declared reference arm (e.g. `production`), under its own name.

Comparisons: candidate minus comparator on paired seeds; the candidate is the arm WITH the
component (or the baseline against a reference arm):
- leave-one-out: baseline vs no-<c>; replace-one: baseline vs replace-<c>
- add-one: with-<c> vs base
- full-factorial: baseline vs the cell with only c switched off (`no-<c>`)
- every reference arm r: baseline vs r (kind `reference`)

Only names, kinds and overrides live here: no config resolution and no confound checks,
so the model also serves EDDs that are not yet known to be sound (edd validate).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BASELINE = "baseline"
BASE = "base"
DESIGNS = ("leave-one-out", "add-one", "replace-one", "full-factorial")
COMPARISON_KINDS = ("component", "reference")


class UnknownDesign(ValueError):
    """A design name this module does not define (the EDD schema admits only DESIGNS)."""


@dataclass(frozen=True)
class DesignArm:
    """One arm as the design defines it, before its config is resolved."""

    name: str
    kind: str  # baseline | base | component | reference | factorial
    overrides: tuple[str, ...]
    component: str | None = None
    factors: Mapping[str, bool] | None = None
    pointer: str = "/protocol"  # where the EDD declares its overrides


@dataclass(frozen=True)
class Comparison:
    """One implied comparison: `target` is a component or a reference arm name."""

    target: str
    kind: str  # component | reference
    candidate_arm: str
    comparator_arm: str

    def to_dict(self) -> dict[str, str]:
        return {
            "target": self.target,
            "kind": self.kind,
            "candidate_arm": self.candidate_arm,
            "comparator_arm": self.comparator_arm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(
            target=str(data["target"]),
            kind=str(data["kind"]),
            candidate_arm=str(data["candidate_arm"]),
            comparator_arm=str(data["comparator_arm"]),
        )

    def describe(self) -> str:
        return f"{self.target} ({self.kind}): {self.candidate_arm} vs {self.comparator_arm}"


@dataclass(frozen=True)
class Design:
    """A design applied to an EDD's components and references."""

    name: str
    components: tuple[str, ...]
    arms: tuple[DesignArm, ...]
    comparisons: tuple[Comparison, ...]

    @property
    def arm_names(self) -> list[str]:
        return [arm.name for arm in self.arms]

    def factorial_cells(self) -> list[DesignArm]:
        """The 2^k cells of a full-factorial design (the all-on cell is the baseline)."""
        return [arm for arm in self.arms if arm.factors is not None]


def design_of(protocol: Mapping[str, Any]) -> Design:
    """The design an EDD's `protocol` section declares, its arms and its comparisons.

    Tolerates what the protocol engine refuses later (duplicate names, a replace-one
    component without `replace`): validation reports those with their own messages.
    """
    name = str(protocol["design"])
    components = list(protocol["components"])
    component_arms, component_comparisons = _component_arms(name, components)
    references = [
        DesignArm(
            str(reference["name"]),
            "reference",
            tuple(reference.get("overrides", ())),
            pointer=f"/protocol/references/{index}/overrides",
        )
        for index, reference in enumerate(protocol.get("references", []))
    ]
    comparisons = component_comparisons + [
        Comparison(arm.name, "reference", BASELINE, arm.name) for arm in references
    ]
    return Design(
        name=name,
        components=tuple(str(c["name"]) for c in components),
        arms=tuple(component_arms + references),
        comparisons=tuple(comparisons),
    )


def _ptr(index: int, key: str) -> str:
    return f"/protocol/components/{index}/{key}"


def _component_arms(
    design: str, components: Sequence[Mapping[str, Any]]
) -> tuple[list[DesignArm], list[Comparison]]:
    names = [str(c["name"]) for c in components]
    ablate = {str(c["name"]): tuple(c.get("ablate", ())) for c in components}
    baseline = DesignArm(BASELINE, "baseline", ())
    if design == "leave-one-out":
        arms = [
            DesignArm(f"no-{n}", "component", ablate[n], component=n, pointer=_ptr(i, "ablate"))
            for i, n in enumerate(names)
        ]
        return [baseline, *arms], [
            Comparison(a.component or "", "component", BASELINE, a.name) for a in arms
        ]
    if design == "add-one":
        everything = tuple(o for n in names for o in ablate[n])
        # The signed baseline (all on) is measured too: reference claims and the
        # default determinism check compare against it.
        arms = [
            DesignArm(
                f"with-{n}",
                "component",
                tuple(o for other in names if other != n for o in ablate[other]),
                component=n,
                pointer=_ptr(i, "ablate"),
            )
            for i, n in enumerate(names)
        ]
        return [baseline, DesignArm(BASE, "base", everything), *arms], [
            Comparison(a.component or "", "component", a.name, BASE) for a in arms
        ]
    if design == "replace-one":
        arms = [
            DesignArm(
                f"replace-{n}",
                "component",
                tuple(c.get("replace", ())),
                component=n,
                pointer=_ptr(i, "replace"),
            )
            for i, (n, c) in enumerate(zip(names, components, strict=True))
        ]
        return [baseline, *arms], [
            Comparison(a.component or "", "component", BASELINE, a.name) for a in arms
        ]
    if design == "full-factorial":
        return _factorial_arms(names, ablate), [
            Comparison(n, "component", BASELINE, f"no-{n}") for n in names
        ]
    raise UnknownDesign(f"unknown design {design!r}")


def _factorial_arms(names: Sequence[str], ablate: Mapping[str, tuple[str, ...]]) -> list[DesignArm]:
    arms = []
    for present in itertools.product((True, False), repeat=len(names)):
        factors = dict(zip(names, present, strict=True))
        off = [n for n in names if not factors[n]]
        if off:
            overrides = tuple(o for n in off for o in ablate[n])
            arms.append(DesignArm("no-" + "+".join(off), "factorial", overrides, factors=factors))
        else:
            arms.append(DesignArm(BASELINE, "baseline", (), factors=factors))
    return arms


def comparison_problems(
    recorded: Sequence[Comparison], implied: Sequence[Comparison]
) -> list[tuple[str, str]]:
    """(pointer under plan/comparisons, message) for each way `recorded` departs from `implied`.

    The signed design decides the comparisons; a results file may only repeat them.
    """
    problems: list[tuple[str, str]] = []
    wanted = set(implied)
    for index, comparison in enumerate(recorded):
        if comparison not in wanted:
            problems.append(
                (
                    f"/{index}",
                    f"comparison {comparison.describe()} is not one the signed design implies",
                )
            )
    have = set(recorded)
    for comparison in implied:
        if comparison not in have:
            problems.append(
                ("", f"the signed design implies {comparison.describe()}, which is not recorded")
            )
    if not problems and list(recorded) != list(implied):
        problems.append(("", "comparisons are recorded more than once or in another order"))
    return problems
