"""The one strict reader and the one atomic writer of the study documents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audit.documents import (
    MAX_DEPTH,
    parse_json,
    read_analysis,
    read_checkpoint,
    read_gate_result,
    read_results,
    write_document,
)
from audit.errors import ExitCode, InputError, ValidationFailed

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "study"
HOSTILE = b'{"a":1,"a":2,"b":NaN}'


def _report_readers():
    from audit.report.inputs import load_analysis, load_checkpoint, load_results, read_json

    return [read_json, load_analysis, load_results, load_checkpoint]


def _cli_readers():
    from audit.cli.track_log import read_document
    from audit.protocol.results import read_results as read_results_dict
    from audit.tracking.checkpoint import load_checkpoint

    return [
        lambda p: read_document(p, "results"),
        read_results_dict,
        load_checkpoint,
    ]


READERS = [
    read_results,
    read_analysis,
    read_gate_result,
    read_checkpoint,
    *_report_readers(),
    *_cli_readers(),
]


@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_duplicate_keys_and_nan_with_pointers(reader, tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(HOSTILE)
    with pytest.raises(ValidationFailed) as caught:
        reader(path)
    assert caught.value.exit_code == ExitCode.CHECK_FAILED
    assert caught.value.file == str(path)
    assert ("/a", "duplicate key 'a'") in caught.value.problems
    assert ("/b", "NaN is not a finite JSON number") in caught.value.problems


@pytest.mark.parametrize(
    ("raw", "pointer", "words"),
    [
        (b'{"x": {"y": [1, Infinity]}}', "/x/y/1", "Infinity is not a finite"),
        (b'{"x": -Infinity}', "/x", "-Infinity is not a finite"),
        (b'{"x": 1e400}', "/x", "1e400 is not a finite"),
        (b'{"a~b/c": {"k": 1, "k": 2}}', "/a~0b~1c/k", "duplicate key 'k'"),
    ],
)
def test_refusals_name_the_json_pointer(raw, pointer, words):
    with pytest.raises(ValidationFailed) as caught:
        parse_json(raw, "f.json")
    assert any(p == pointer and words in m for p, m in caught.value.problems)


def test_non_utf8_and_syntax_errors_name_the_file():
    with pytest.raises(InputError) as caught:
        parse_json(b'{"a": "\xff"}', "f.json")
    assert caught.value.user_message() == "f.json: not UTF-8 text (byte 7)"
    with pytest.raises(InputError) as caught:
        parse_json(b"{", "f.json")
    assert caught.value.user_message().startswith("f.json: not valid JSON: ")
    assert "(line 1, column 2)" in caught.value.user_message()


def test_over_deep_nesting_is_refused():
    deep = b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2)
    with pytest.raises(ValidationFailed, match="nested deeper than"):
        parse_json(deep, "f.json")
    very_deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InputError, match="nested deeper than"):
        parse_json(very_deep, "f.json")
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, "f.json") is not None


def test_schema_violations_name_file_and_pointer(tmp_path):
    results = json.loads((FIXTURES / "results.json").read_text())
    results["trials"][1]["seed"] = "three"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValidationFailed) as caught:
        read_results(path)
    assert caught.value.problems[0][0] == "/trials/1/seed"


def test_a_gate_result_whose_verdict_does_not_follow_is_refused(tmp_path):
    gate = {
        "schema": "mlaudit/gate/v1",
        "passed": True,
        "rules": [
            {"rule": "budget", "kind": "budget", "title": "t", "passed": False, "evidence": "e"}
        ],
        "reasons": ["budget: e"],
        "edd": {"id": "s", "version": 1, "digest": "a" * 64},
        "results_sha256": "b" * 64,
    }
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(gate))
    with pytest.raises(ValidationFailed, match="does not follow"):
        read_gate_result(path)


def test_typed_results_keep_bytes_and_trials():
    results = read_results(FIXTURES / "results.json")
    assert results.sha256 == __import__("hashlib").sha256(results.raw).hexdigest()
    first = results.trials[0]
    assert first.pointer == "/trials/0"
    assert first.trial_id == f"{first.arm}/{first.seed}"


def test_typed_results_carry_the_recorded_comparisons(tmp_path):
    document = json.loads((FIXTURES / "results.json").read_text())
    assert read_results(FIXTURES / "results.json").comparisons is None  # written before them
    recorded = {
        "target": "production",
        "kind": "reference",
        "candidate_arm": "baseline",
        "comparator_arm": "production",
    }
    document["plan"]["comparisons"] = [recorded]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))
    (comparison,) = read_results(path).comparisons or ()
    assert comparison.to_dict() == recorded
    document["plan"]["comparisons"] = [{**recorded, "kind": "sideways"}]
    path.write_text(json.dumps(document))
    with pytest.raises(ValidationFailed) as caught:
        read_results(path)
    assert caught.value.problems[0][0] == "/plan/comparisons/0/kind"


def test_writer_sorts_keys_ends_with_newline_and_sets_mode(tmp_path):
    path = tmp_path / "out" / "doc.json"
    os.umask(0o077)
    try:
        data = write_document(path, {"b": 1, "a": "é"})
    finally:
        os.umask(0o022)
    assert path.read_bytes() == data == '{\n  "a": "é",\n  "b": 1\n}\n'.encode()
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["doc.json"]


def test_writer_refuses_what_breaks_the_schema_and_writes_nothing(tmp_path):
    path = tmp_path / "gate.json"
    with pytest.raises(ValidationFailed):
        write_document(path, {"schema": "mlaudit/gate/v1", "passed": "yes"}, schema="gate")
    assert not path.exists()
    with pytest.raises(ValueError):
        write_document(path, {"x": float("nan")})
    assert list(tmp_path.iterdir()) == []


_WRITER = """
import sys
from pathlib import Path
from audit.documents import write_document
path = Path(sys.argv[1])
print("ready", flush=True)
n = 0
while True:
    n += 1
    write_document(path, {"n": n, "pad": ["x" * 64] * 20000})
"""


def test_a_killed_writer_leaves_the_old_file_or_none(tmp_path):
    path = tmp_path / "doc.json"
    for attempt in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.07 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if path.exists():
            document = json.loads(path.read_bytes())  # whole, never half a file
            assert document["n"] >= 1
            assert len(document["pad"]) == 20000


def test_the_bundle_member_reader_refuses_with_pointers():
    from audit.bundle.verify import BundleReport, _Context

    report = BundleReport("b.tar.gz")
    ctx = _Context({"results/results.json": HOSTILE}, report)
    ctx.manifest = {"layout": {"results": "results/results.json"}}
    ctx.check = "results-sealed"
    assert ctx.json("results") is None
    pointers = {f.pointer: f.reason for f in report.findings}
    assert pointers["results/results.json:/a"] == "duplicate key 'a'"
    assert pointers["results/results.json:/b"] == "NaN is not a finite JSON number"
    assert ctx.json("results") is None  # parsed once: no second set of findings
    assert len(report.findings) == 2
