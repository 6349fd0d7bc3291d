"""The fast schema checker must say exactly what jsonschema says, on every document we try."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from audit._resources import check_schema, load_schema
from audit.edd.safe_yaml import parse_yaml_bytes
from audit.edd.schema_check import SchemaChecker
from audit.errors import ValidationFailed, pointer_of

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "edd"
MINIMAL = parse_yaml_bytes((CORPUS / "valid" / "minimal.yaml").read_bytes(), "m").value


def reference(document, name: str) -> Counter:
    problems = []
    for error in Draft202012Validator(load_schema(name)).iter_errors(document):
        pointer = pointer_of(error.absolute_path)
        if (
            error.validator == "additionalProperties"
            and error.schema["additionalProperties"] is False
        ):
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    token = str(key).replace("~", "~0").replace("/", "~1")
                    problems.append((f"{pointer}/{token}", "unknown field"))
        else:
            problems.append((pointer, error.message))
    return Counter(problems)


def ours(document, name: str) -> Counter:
    return Counter(SchemaChecker(load_schema(name)).problems(document))


def corpus_documents():
    for path in sorted(CORPUS.glob("*/*.yaml")):
        try:
            yield pytest.param(parse_yaml_bytes(path.read_bytes(), path.name).value, id=path.stem)
        except ValidationFailed:
            continue


@pytest.mark.parametrize("document", list(corpus_documents()))
def test_agrees_on_the_corpus(document):
    assert ours(document, "edd") == reference(document, "edd")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(-1, 2) | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, (*prefix, index))


ALL_PATHS = [p for p in paths(MINIMAL) if p]


@st.composite
def mutated(draw, base=MINIMAL, all_paths=ALL_PATHS):
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(all_paths))
        parent = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(json_values)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_agrees_on_mutated_edds(document):
    assert ours(document, "edd") == reference(document, "edd")


POLICY = {
    "quorum": 2,
    "roles": {"risk": ["*@x", "!a@x"]},
    "required_roles": ["risk"],
    "min_seeds": 3,
}


@settings(max_examples=200, deadline=None)
@given(mutated(base=POLICY, all_paths=[p for p in paths(POLICY) if p]))
def test_agrees_on_mutated_policies(document):
    assert ours(document, "policy") == reference(document, "policy")


@pytest.mark.parametrize("value", [1, 1.0, True, "1", None, [1], {"a": 1}])
def test_agrees_on_scalar_documents(value):
    assert ours(value, "edd") == reference(value, "edd")


def test_refuses_schemas_with_unknown_keywords():
    with pytest.raises(ValueError, match="oneOf"):
        SchemaChecker({"oneOf": [{"type": "string"}]})
    with pytest.raises(ValueError, match="multipleOf"):
        SchemaChecker({"properties": {"a": {"multipleOf": 2}}})


RESULTS = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures/study/passing/results.json").read_text()
)
# One trial record is enough to reach every path of a trial's schema; one comparison
# reaches the object that refuses unknown fields.
COMPARISON = {"target": "a", "kind": "component", "candidate_arm": "b", "comparator_arm": "c"}
RESULTS_ONE_TRIAL = {
    **RESULTS,
    "plan": {**RESULTS["plan"], "comparisons": [COMPARISON]},
    "trials": RESULTS["trials"][:1],
}


def test_agrees_on_a_real_results_document():
    assert ours(RESULTS, "results") == reference(RESULTS, "results") == Counter()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(base=RESULTS_ONE_TRIAL, all_paths=[p for p in paths(RESULTS_ONE_TRIAL) if p]))
def test_agrees_on_mutated_results(document):
    # check_schema trusts this checker's "no problem" for results.json (audit._resources).
    assert ours(document, "results") == reference(document, "results")


def test_a_refused_results_document_is_worded_by_jsonschema():
    document = copy.deepcopy(RESULTS_ONE_TRIAL)
    document["trials"][0]["seed"] = "zero"
    document["plan"]["comparisons"][0]["surprise"] = 1
    with pytest.raises(ValidationFailed) as refused:
        check_schema(document, "results", "results.json")
    expected = [
        (pointer_of(e.absolute_path), e.message)
        for e in Draft202012Validator(load_schema("results")).iter_errors(document)
    ]
    assert refused.value.problems == expected
    assert len(expected) == 2  # the unknown field in jsonschema's words, not "unknown field"
    assert any("Additional properties are not allowed" in message for _, message in expected)


# check_schema also trusts this checker's "no problem" for the documents the steps after
# the run read (analysis, gate, checkpoint): `report` and `gate` then never import jsonschema.
STUDY = Path(__file__).resolve().parents[2] / "fixtures/study/passing"
CHECKPOINT = {
    "format": "mlaudit.checkpoint/1",
    "origin": "127.0.0.1:5000/experiments/1",
    "experiment_id": "1",
    "tracking_uri": "http://127.0.0.1:5000",
    "size": 12,
    "root": "ab" * 32,
    "root_base64": "q6s=",
    "taken_at": "2026-12-03T00:00:00Z",
    "note": "127.0.0.1:5000/experiments/1\n12\nq6s=\n",
    "signature": None,
}
AFTER_RUN = {
    "analysis": json.loads((STUDY / "analysis.json").read_text()),
    "gate": json.loads((STUDY / "gate.json").read_text()),
    "checkpoint": CHECKPOINT,
}


@pytest.mark.parametrize("name", sorted(AFTER_RUN))
def test_agrees_on_a_real_document_read_after_the_run(name):
    assert ours(AFTER_RUN[name], name) == reference(AFTER_RUN[name], name) == Counter()


def _agrees_on_mutations(name: str, examples: int):
    base = AFTER_RUN[name]

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(base=base, all_paths=[p for p in paths(base) if p]))
    def agrees(document):
        assert ours(document, name) == reference(document, name)

    return agrees


test_agrees_on_mutated_analyses = _agrees_on_mutations("analysis", 300)
test_agrees_on_mutated_gates = _agrees_on_mutations("gate", 200)
test_agrees_on_mutated_checkpoints = _agrees_on_mutations("checkpoint", 200)


@pytest.mark.parametrize("name", sorted(AFTER_RUN))
def test_a_valid_document_read_after_the_run_skips_jsonschema(name, monkeypatch):
    import audit._resources as resources

    def refuse(*args, **kwargs):
        raise AssertionError("jsonschema was consulted on a valid document")

    monkeypatch.setattr(resources, "schema_problems", refuse)
    check_schema(AFTER_RUN[name], name, f"{name}.json")


UNIQUE = {"type": "array", "uniqueItems": True}


@pytest.mark.parametrize(
    "items",
    [
        [1, 1.0],
        [1, True],
        [0, False],
        [None, False],
        ["1", 1],
        [{"a": 1, "b": [1, 2]}, {"b": [1.0, 2], "a": 1}],
        [{"a": 1}, {"a": True}],
        [[1, [2]], [1, [2.0]]],
        [[1, 2], [2, 1]],
        [{"a": None}, {"b": None}],
        [*range(300), 299.0],
        list(range(300)),
    ],
)
def test_unique_items_agrees_with_jsonschema(items):
    expected = [e.message for e in Draft202012Validator(UNIQUE).iter_errors(items)]
    assert [message for _, message in SchemaChecker(UNIQUE).problems(items)] == expected


def test_unique_items_never_finds_nan_equal_to_itself():
    # NaN equals nothing in JSON Schema's sense, as in _equal: [nan, nan] is unique.
    nan = float("nan")
    assert SchemaChecker(UNIQUE).problems([nan, nan]) == []
    assert SchemaChecker(UNIQUE).problems([[nan], [nan]]) == []


@given(st.lists(json_values, max_size=8))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_unique_items_agrees_on_generated_lists(items):
    expected = [e.message for e in Draft202012Validator(UNIQUE).iter_errors(items)]
    assert [message for _, message in SchemaChecker(UNIQUE).problems(items)] == expected
