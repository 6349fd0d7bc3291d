"""Property-based fuzzing of the study-document readers: no input is an internal error.

results.json, analysis.json, gate.json and checkpoint.json come from other jobs (and,
for a fork's pull request, from an unprivileged run), so each strict reader either
returns its typed document or raises its documented MlauditError naming the file.
Inputs are random bytes, JSON-ish pieces (deep nesting, huge numbers, duplicate keys,
NaN) and byte mutations of real study files. Seeds are fixed (derandomize) and budgets
small, so `make test` stays fast and a failure reproduces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.documents.analysis import parse_analysis
from audit.documents.checkpoint import parse_checkpoint_document
from audit.documents.gate_result import parse_gate_result
from audit.documents.results import parse_results
from audit.errors import ExitCode, MlauditError

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study" / "passing"
SOURCE = "fuzz.json"

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PIECES = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", '"a"', '"a":1,"a":2', "NaN", "-Infinity", "1e400",
        "9" * 5000, "true", "null", '"\\ud800"', "\xff", "0.1", '"trials"', '"passed"',
        "[" * 200, "]" * 200, '{"x":' * 100, "}" * 100, "[" * 5000, '{"x":' * 3000,
    ]
)  # fmt: skip


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    def mutate(args: tuple[int, int, bytes]) -> bytes:
        at, cut, insert = args
        at %= len(valid) + 1
        return valid[:at] + insert + valid[at + cut :]

    return st.tuples(st.integers(0, 10**6), st.integers(0, 64), st.binary(max_size=16)).map(mutate)


def _inputs(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.lists(PIECES, max_size=30).map(lambda parts: "".join(parts).encode("utf-8", "replace")),
        _mutations(valid),
    )


def _answers(parse: Callable[[bytes, str], Any], data: bytes) -> None:
    refusal: MlauditError | None = None
    try:
        parse(data, SOURCE)
    except MlauditError as error:  # anything else escapes and fails the test
        refusal = error
    if refusal is not None:
        assert refusal.exit_code != ExitCode.INTERNAL
        assert refusal.user_message().startswith(SOURCE)


READERS = {
    "results": (parse_results, (STUDY / "results.json").read_bytes()),
    "analysis": (parse_analysis, (STUDY / "analysis.json").read_bytes()),
    "gate": (parse_gate_result, (STUDY / "gate.json").read_bytes()),
    "checkpoint": (
        parse_checkpoint_document,
        b'{"origin": "http://127.0.0.1:5000", "experiment_id": "1", "size": 3, '
        b'"root": "' + b"a" * 64 + b'"}',
    ),
}


@pytest.mark.parametrize("name", sorted(READERS))
def test_reader_returns_its_document_or_a_pointed_input_error(name):
    parse, valid = READERS[name]

    @FUZZ
    @given(_inputs(valid))
    def fuzz(data: bytes) -> None:
        _answers(parse, data)

    fuzz()
