"""The small override reader: keys, sweeps and prefixes."""

from __future__ import annotations

import pytest

from audit.edd.overrides import OverrideSyntaxError, baseline_value, is_missing, parse_override


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("a=1", "a", 1),
        ("model.depth=3", "model.depth", 3),
        ("features.a=false", "features.a", False),
        ("opt.lr=1e-3", "opt.lr", "1e-3"),  # not a plain float form: compared as unknown
        ("opt.lr=0.001", "opt.lr", 0.001),
        ("name=adam", "name", "adam"),
        ("list_key=[1,2,3]", "list_key", None),
        ("q='a,b'", "q", None),
        ("x=${y}", "x", None),
        ("x=", "x", None),
    ],
)
def test_parses_key_and_value(text, key, value):
    override = parse_override(text)
    assert override.key == key
    scalar = override.scalar()
    if value is None:
        assert is_missing(scalar) or scalar is None
    elif isinstance(value, str) and value == "1e-3":
        assert is_missing(scalar) or scalar == 0.001
    else:
        assert scalar == value


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a=1,2", "is a sweep"),
        ("a=choice(1,2)", "is a sweep"),
        ("a=range(1,5)", "is a sweep"),
        ("a=glob(*)", "is a sweep"),
        ("a=interval(0,1)", "is a sweep"),
        ("+a=1", "add or delete keys"),
        ("++a=1", "add or delete keys"),
        ("~a", "add or delete keys"),
        ("a", "key=value"),
        ("a b=1", "dotted config key"),
        ("db@x=1", "dotted config key"),
        ("=1", "dotted config key"),
    ],
)
def test_refuses(text, fragment):
    with pytest.raises(OverrideSyntaxError, match=fragment):
        parse_override(text)


def test_commas_inside_brackets_and_quotes_are_not_sweeps():
    assert parse_override("a=[1,2]").key == "a"
    assert parse_override("a={x: 1, y: 2}").key == "a"
    assert parse_override('a="x,y"').key == "a"


def test_baseline_lookup():
    baseline = {"a": {"b": [10, {"c": None}]}}
    assert baseline_value(baseline, ["a", "b", "0"]) == 10
    assert baseline_value(baseline, ["a", "b", "1", "c"]) is None
    assert is_missing(baseline_value(baseline, ["a", "x"]))
    assert is_missing(baseline_value(baseline, ["a", "b", "5"]))
