"""The one model of the designs: arms, comparisons, and agreement with the plan and the EDD."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from audit.designs import DESIGNS, Comparison, comparison_problems, design_of
from audit.edd import load_edd, planned_arm_names, planned_trial_count
from audit.protocol.plan import build_plan

MINIMAL = "tests/corpus/edd/valid/minimal.yaml"


def _document(design: str, *, rerun: bool = True, references: bool = True) -> dict:
    document = copy.deepcopy(load_edd(MINIMAL).document)
    document["protocol"]["design"] = design
    for component in document["protocol"]["components"]:
        component["replace"] = [f"features.{component['name']}=false"]
    if not references:
        document["protocol"]["references"] = []
    if not rerun:
        del document["reproducibility"]
    return document


def _pairs(design: str) -> list[tuple[str, str, str, str]]:
    return [
        (c.target, c.kind, c.candidate_arm, c.comparator_arm)
        for c in design_of(_document(design)["protocol"]).comparisons
    ]


def test_each_design_implies_its_comparisons():
    reference = ("production", "reference", "baseline", "production")
    assert _pairs("leave-one-out") == [
        ("a", "component", "baseline", "no-a"),
        ("b", "component", "baseline", "no-b"),
        reference,
    ]
    assert _pairs("add-one") == [
        ("a", "component", "with-a", "base"),
        ("b", "component", "with-b", "base"),
        reference,
    ]
    assert _pairs("replace-one") == [
        ("a", "component", "baseline", "replace-a"),
        ("b", "component", "baseline", "replace-b"),
        reference,
    ]
    assert _pairs("full-factorial") == [
        ("a", "component", "baseline", "no-a"),
        ("b", "component", "baseline", "no-b"),
        reference,
    ]


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("rerun", [True, False])
def test_the_edd_counts_and_names_the_arms_the_plan_runs(design, rerun):
    document = _document(design, rerun=rerun)
    plan = build_plan(document)
    assert planned_arm_names(document) == [a.name for a in plan.arms]
    assert planned_trial_count(document) == plan.trial_count + (1 if rerun else 0)


@pytest.mark.parametrize("design", DESIGNS)
def test_the_plan_records_the_designs_comparisons_over_its_own_arms(design):
    document = _document(design)
    plan = build_plan(document)
    implied = design_of(document["protocol"]).comparisons
    assert plan.comparisons == implied
    assert plan.to_dict()["comparisons"] == [c.to_dict() for c in implied]
    arms = {a.name: a for a in plan.arms}
    for comparison in implied:
        assert {comparison.candidate_arm, comparison.comparator_arm} <= set(arms)
        if comparison.kind == "reference":
            continue
        with_it, without = arms[comparison.candidate_arm], arms[comparison.comparator_arm]
        # The candidate has the component on and the comparator has it off, nothing else.
        assert with_it.config["features"][comparison.target] is True
        if design != "replace-one":
            assert without.config["features"][comparison.target] is False
        others = {k: v for k, v in with_it.config["features"].items() if k != comparison.target}
        assert others == {
            k: v for k, v in without.config["features"].items() if k != comparison.target
        }


def test_factorial_comparators_switch_only_their_component_off():
    design = design_of(_document("full-factorial", references=False)["protocol"])
    cells = {c.name: dict(c.factors or {}) for c in design.factorial_cells()}
    for comparison in design.comparisons:
        assert cells[comparison.candidate_arm] == {"a": True, "b": True}
        assert cells[comparison.comparator_arm] == {
            name: name != comparison.target for name in ("a", "b")
        }


def test_recording_comparisons_leaves_the_plan_identity_unchanged():
    plan = build_plan(_document("leave-one-out"))
    assert dataclasses.replace(plan, comparisons=()).sha256 == plan.sha256


def test_comparison_problems_name_extra_missing_and_reordered():
    implied = design_of(_document("leave-one-out")["protocol"]).comparisons
    assert comparison_problems(implied, implied) == []
    flipped = Comparison("a", "component", "no-a", "baseline")
    problems = comparison_problems([flipped, *implied[1:]], implied)
    assert problems == [
        ("/0", "comparison a (component): no-a vs baseline is not one the signed design implies"),
        ("", "the signed design implies a (component): baseline vs no-a, which is not recorded"),
    ]
    assert comparison_problems(list(reversed(implied)), implied) == [
        ("", "comparisons are recorded more than once or in another order")
    ]
    assert comparison_problems([*implied, implied[0]], implied) == [
        ("", "comparisons are recorded more than once or in another order")
    ]


def test_an_unknown_design_is_refused():
    document = _document("leave-one-out")
    document["protocol"]["design"] = "one-at-a-time"
    with pytest.raises(ValueError, match="unknown design 'one-at-a-time'"):
        design_of(document["protocol"])
