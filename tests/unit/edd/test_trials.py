"""planned_trial_count: arms x seeds (+1 re-run), for each design."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from audit.edd import load_edd, planned_arm_count, planned_arm_names, planned_trial_count

MINIMAL = Path(__file__).resolve().parents[2] / "corpus" / "edd" / "valid" / "minimal.yaml"


def document(design: str, components: int, references: int, seeds: int, rerun: bool = True):
    doc = copy.deepcopy(load_edd(MINIMAL).document)
    doc["protocol"]["design"] = design
    doc["protocol"]["components"] = [
        {"name": f"c{i}", "ablate": [f"x{i}=0"]} for i in range(components)
    ]
    doc["protocol"]["references"] = [{"name": f"r{i}", "overrides": []} for i in range(references)]
    doc["protocol"]["seeds"] = list(range(seeds))
    if not rerun:
        del doc["reproducibility"]
    return doc


@pytest.mark.parametrize(
    ("design", "k", "refs", "arms"),
    [
        ("leave-one-out", 3, 0, 4),
        ("leave-one-out", 3, 1, 5),
        ("add-one", 3, 0, 5),
        ("replace-one", 2, 1, 4),
        ("full-factorial", 3, 0, 8),
        ("full-factorial", 4, 2, 18),
    ],
)
def test_arms_per_design(design, k, refs, arms):
    assert planned_arm_count(document(design, k, refs, 5)) == arms
    assert planned_trial_count(document(design, k, refs, 5)) == arms * 5 + 1
    assert planned_trial_count(document(design, k, refs, 5, rerun=False)) == arms * 5


def test_minimal_edd():
    # baseline + a + b (leave-one-out) + production = 4 arms x 8 seeds + 1 re-run
    assert planned_trial_count(load_edd(MINIMAL).document) == 33


@pytest.mark.parametrize(
    ("design", "names"),
    [
        ("leave-one-out", ["baseline", "no-c0", "no-c1", "r0"]),
        ("add-one", ["baseline", "base", "with-c0", "with-c1", "r0"]),
        ("replace-one", ["baseline", "replace-c0", "replace-c1", "r0"]),
        ("full-factorial", ["baseline", "no-c1", "no-c0", "no-c0+c1", "r0"]),
    ],
)
def test_arm_names_follow_the_protocol_engine(design, names):
    doc = document(design, 2, 1, 3)
    assert planned_arm_names(doc) == names
    assert len(names) == planned_arm_count(doc)
