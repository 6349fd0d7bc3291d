"""How many trials an EDD plans: one pure function the protocol engine reuses."""

from __future__ import annotations

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
