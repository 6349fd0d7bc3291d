"""The statistics compare what plan.comparisons records, and only what the signed design implies."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

from audit.designs import design_of
from audit.errors import ValidationFailed
from audit.stats import analyze_results

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"
VARIANTS = ("passing", "underpowered", "add-one", "factorial")


def _load(variant: str) -> tuple[bytes, dict]:
    raw = (STUDY / variant / "results.json").read_bytes()
    return raw, json.loads(raw)


def _recorded(results: dict) -> dict:
    """The results as a plan that records its comparisons would have written them."""
    recorded = copy.deepcopy(results)
    implied = design_of(results["edd"]["document"]["protocol"]).comparisons
    recorded["plan"]["comparisons"] = [c.to_dict() for c in implied]
    return recorded


@pytest.mark.parametrize("variant", VARIANTS)
def test_recorded_comparisons_analyse_like_the_committed_analysis(variant):
    # The fixtures predate plan.comparisons; recording them changes nothing but the bytes.
    raw, results = _load(variant)
    assert "comparisons" not in results["plan"]
    digest = hashlib.sha256(raw).hexdigest()
    analysis = analyze_results(_recorded(results), results_sha256=digest)
    committed = json.loads((STUDY / variant / "analysis.json").read_text())
    committed["method"]["software"] = analysis["method"]["software"]
    assert committed == json.loads(json.dumps(analysis))


def _refusal(results: dict) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        analyze_results(results, source="results.json")
    return caught.value


def test_a_comparison_the_design_does_not_imply_is_refused():
    results = _recorded(_load("passing")[1])
    comparisons = results["plan"]["comparisons"]
    comparisons.append(
        {
            "target": "graph_features",
            "kind": "component",
            "candidate_arm": "baseline",
            "comparator_arm": "no-calibration",
        }
    )
    error = _refusal(results)
    assert error.location.pointer == f"/plan/comparisons/{len(comparisons) - 1}"
    assert "graph_features (component): baseline vs no-calibration is not one the signed " in (
        error.user_message()
    )


def test_a_flipped_comparison_is_refused():
    # Swapping the arms would flip the sign of every delta and so every verdict.
    results = _recorded(_load("passing")[1])
    first = results["plan"]["comparisons"][0]
    first["candidate_arm"], first["comparator_arm"] = (
        first["comparator_arm"],
        first["candidate_arm"],
    )
    error = _refusal(results)
    pointers = [pointer for pointer, _ in error.problems]
    assert pointers == ["/plan/comparisons/0", "/plan/comparisons"]
    assert "which is not recorded" in error.problems[1][1]


def test_a_dropped_comparison_is_refused():
    results = _recorded(_load("passing")[1])
    dropped = results["plan"]["comparisons"].pop()
    error = _refusal(results)
    assert error.location.pointer == "/plan/comparisons"
    assert dropped["target"] in error.user_message()
