"""How many trials an EDD plans: one pure function the protocol engine reuses."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any


def planned_arm_count(document: Mapping[str, Any]) -> int:
    """Arms = the baseline, the design's arms and the reference arms.

    leave-one-out: baseline + k; add-one: baseline + the all-off base + k;
    replace-one: baseline + k; full-factorial: 2^k (the baseline is one of them).
    """
    protocol = document["protocol"]
    k: int = len(protocol["components"])
    design: str = protocol["design"]
    if design == "full-factorial":
        design_arms = 1 << k
    elif design == "add-one":
        design_arms = 1 + (k + 1)
    elif design in ("leave-one-out", "replace-one"):
        design_arms = 1 + k
    else:
        raise ValueError(f"unknown design {design!r}")
    references: int = len(protocol.get("references", []))
    return design_arms + references


def planned_trial_count(document: Mapping[str, Any]) -> int:
    """Arms x seeds, plus one re-run of a trial when the EDD asks for a reproducibility check."""
    seeds: int = len(document["protocol"]["seeds"])
    rerun = 1 if "reproducibility" in document else 0
    return planned_arm_count(document) * seeds + rerun


def planned_arm_names(document: Mapping[str, Any]) -> list[str]:
    """Arm names as the protocol engine gives them (audit/protocol/plan.py).

    leave-one-out: baseline, no-<c>; add-one: baseline, base, with-<c>;
    replace-one: baseline, replace-<c>; full-factorial: baseline and
    no-<c1>+<c2>... for every other subset; then the reference arms.
    """
    protocol = document["protocol"]
    names = [str(c["name"]) for c in protocol["components"]]
    design = protocol["design"]
    arms = ["baseline"]
    if design == "leave-one-out":
        arms += [f"no-{n}" for n in names]
    elif design == "add-one":
        arms += ["base"] + [f"with-{n}" for n in names]
    elif design == "replace-one":
        arms += [f"replace-{n}" for n in names]
    elif design == "full-factorial":
        for present in itertools.product((True, False), repeat=len(names)):
            off = [n for n, on in zip(names, present, strict=True) if not on]
            if off:
                arms.append("no-" + "+".join(off))
    return arms + [str(r["name"]) for r in protocol.get("references", [])]
