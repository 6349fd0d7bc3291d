"""The safe YAML reader: YAML 1.2 core scalars, and every refusal with its pointer and line."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.edd.safe_yaml import MAX_BYTES, MAX_DEPTH, parse_yaml_bytes
from audit.errors import ValidationFailed


def parse(text: str):
    return parse_yaml_bytes(text.encode(), "t.yaml").value


def problems(text: str | bytes) -> list[tuple[str, str]]:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(ValidationFailed) as caught:
        parse_yaml_bytes(data, "t.yaml")
    return caught.value.problems


@pytest.mark.parametrize("word", ["true", "True", "TRUE"])
def test_true_spellings(word):
    assert parse(f"a: {word}") == {"a": True}


@pytest.mark.parametrize("word", ["false", "False", "FALSE"])
def test_false_spellings(word):
    assert parse(f"a: {word}") == {"a": False}


@pytest.mark.parametrize(
    "word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "OFF", "tRue"]
)
def test_yaml11_booleans_stay_strings(word):
    assert parse(f"a: {word}") == {"a": word}


@pytest.mark.parametrize(
    "word", ["2024-01-31", "2024-01-31T10:00:00Z", "2001-12-14 21:59:43.10 -5", "12:30:45"]
)
def test_dates_and_sexagesimals_stay_strings(word):
    assert parse(f"a: {word}") == {"a": word}


@pytest.mark.parametrize("word", ["~", "null", "Null", "NULL", ""])
def test_nulls(word):
    assert parse(f"a: {word}") == {"a": None}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-7", -7),
        ("+3", 3),
        ("9007199254740991", 2**53 - 1),
        ("-9007199254740991", -(2**53 - 1)),
    ],
)
def test_integers(text, value):
    assert parse(f"a: {text}") == {"a": value}
    assert type(parse(f"a: {text}")["a"]) is int


@pytest.mark.parametrize(
    ("text", "value"), [("1.5", 1.5), ("1e3", 1000.0), ("-.5", -0.5), ("2.", 2.0)]
)
def test_floats(text, value):
    assert parse(f"a: {text}") == {"a": value}


def test_quoted_scalars_are_strings():
    assert parse("a: 'true'\nb: \"12\"\nc: |\n  null\n") == {"a": "true", "b": "12", "c": "null\n"}


def test_integer_beyond_2_53_is_refused():
    assert problems("a: [1, 9007199254740992]") == [
        ("/a/1", "integer 9007199254740992 is beyond 2^53 - 1 (line 1)")
    ]


def test_duplicate_keys_each_reported():
    found = problems("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert found == [
        ("/b/c", "duplicate key 'c' (first at line 3) (line 4)"),
        ("/a", "duplicate key 'a' (first at line 1) (line 5)"),
    ]


def test_pointer_escapes_slash_and_tilde():
    assert problems("'a/b~c': {x: .nan}") == [
        ("/a~1b~0c/x", "'.nan': NaN and infinity are not allowed (line 1)")
    ]


def test_anchor_alias_and_tag_are_refused_in_place():
    found = problems("a: &x 1\nb: *x\nc: !!str 3\n")
    assert found == [
        ("/a", "anchors are not allowed (&x) (line 1)"),
        ("/b", "aliases are not allowed (*x) (line 2)"),
        ("/c", "tags are not allowed (found 'tag:yaml.org,2002:str') (line 3)"),
    ]


def test_alias_as_key_is_refused():
    assert problems("a: &k x\n*k : 1\n")[1][1].startswith("mapping keys must be plain strings")


def test_depth_limit_is_exact():
    ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse(f"a: {ok}") is not None
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert problems(f"a: {deep}") == [("", f"nesting deeper than {MAX_DEPTH} levels (line 1)")]


def test_very_deep_nesting_fails_cleanly_not_with_recursion_error():
    deep = "[" * 100_000 + "]" * 100_000
    assert "nesting deeper" in problems(f"a: {deep}")[0][1]


def test_size_limit_is_exact():
    body = b"a: '" + b"x" * (MAX_BYTES - 6) + b"'\n"
    assert len(body) == MAX_BYTES
    assert parse_yaml_bytes(body, "t.yaml").value["a"].startswith("x")
    assert problems(body + b" ") == [("", f"file is larger than {MAX_BYTES} bytes")]


def test_lines_map_pointers():
    parsed = parse_yaml_bytes(b"a:\n  - 1\n  - b: 2\n", "t.yaml")
    assert parsed.lines["/a/1/b"] == 3


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_documents_read_back_unchanged(value):
    # JSON is YAML 1.2 flow syntax, so the reader must return exactly what json.dumps wrote.
    text = json.dumps({"v": value})
    result = parse_yaml_bytes(text.encode(), "t.json").value["v"]
    assert result == value
    if isinstance(value, float) and not math.isnan(value):
        assert type(result) is float


def test_surrogate_pair_escapes_join_and_lone_ones_are_refused():
    assert parse('a: "\\ud83d\\ude00"') == {"a": "\U0001f600"}
    assert problems('a: "\\ud83d"') == [
        ("/a", "string holds an unpaired surrogate escape (line 1)")
    ]
