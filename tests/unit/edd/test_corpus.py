"""Every EDD in the corpus: valid ones load, each invalid one fails with its exact errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "edd"
VALID = sorted((CORPUS / "valid").glob("*.yaml"))
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))


def test_corpus_is_big_enough():
    assert len(INVALID) >= 30
    for path in INVALID:
        assert path.with_suffix(".expected").is_file(), f"{path.name} has no .expected file"


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_edd_passes(run_cli, path):
    result = run_cli("edd", "validate", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid")


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_edd_reports_exactly_its_errors(run_cli, path):
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    result = run_cli("edd", "validate", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [line.replace("{file}", str(path)) for line in expected]
    assert result.stdout == ""


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_edd_json_lists_the_same_problems(run_cli, path):
    result = run_cli("edd", "validate", "--json", path)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    assert len(report["problems"]) == len(expected)


# An expired EDD still has a canonical form: auditors digest old EDDs.
NOT_CANONICAL = [p for p in INVALID if p.stem != "not_after_passed"]


@pytest.mark.parametrize("path", NOT_CANONICAL, ids=lambda p: p.stem)
def test_invalid_edd_has_no_canonical_form(run_cli, path):
    result = run_cli("edd", "canonical", path)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
