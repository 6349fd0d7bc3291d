"""How many trials an EDD plans, counted from the one model of the designs (audit/designs.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.designs import design_of


def planned_arm_names(document: Mapping[str, Any]) -> list[str]:
    """Arm names as the protocol engine gives them: the design's arms, then the references."""
    return design_of(document["protocol"]).arm_names  # UnknownDesign is a ValueError


def planned_arm_count(document: Mapping[str, Any]) -> int:
    """Arms = the baseline, the design's arms and the reference arms."""
    return len(planned_arm_names(document))


def planned_trial_count(document: Mapping[str, Any]) -> int:
    """Arms x seeds, plus one re-run of a trial when the EDD asks for a reproducibility check."""
    seeds: int = len(document["protocol"]["seeds"])
    rerun = 1 if "reproducibility" in document else 0
    return planned_arm_count(document) * seeds + rerun
