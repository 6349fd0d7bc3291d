"""One exit-code contract: stated in audit/errors.py, quoted in the README, followed by commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import errors
from audit.errors import EXIT_CODE_MEANINGS, ExitCode, MlauditError, exit_code_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_exit_code_has_one_meaning():
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)


def test_readme_quotes_the_table_generated_from_errors_py():
    text = README.read_text(encoding="utf-8")
    begin = text.index("<!-- exit-codes:begin")
    body = text[text.index("\n", begin) + 1 : text.index("<!-- exit-codes:end -->")]
    assert body == exit_code_table()


def _subclasses(cls: type[MlauditError]) -> list[type[MlauditError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_error_class_maps_to_a_documented_code():
    for cls in [MlauditError, *_subclasses(MlauditError)]:
        assert cls.exit_code in EXIT_CODE_MEANINGS, cls.__name__


def test_missing_file_is_usage_and_unreadable_is_input():
    assert errors.unreadable_input(FileNotFoundError(2, "x"), "f").exit_code == ExitCode.USAGE
    denied = errors.unreadable_input(PermissionError(13, "Permission denied"), "f")
    assert denied.exit_code == ExitCode.CHECK_FAILED
    assert denied.user_message() == "f: cannot read: Permission denied"


@pytest.mark.parametrize(
    "args",
    [
        ["edd", "validate", "{missing}"],
        ["edd", "digest", "{missing}"],
        ["edd", "verify", "{missing}", "--trust-dir", "{tmp}"],
        ["edd", "sign", "{missing}", "--key", "{missing}", "--principal", "a@example.com"],
        ["ablate", "plan", "{missing}"],
        ["gate", "--analysis", "{missing}", "--results", "{missing}"],
        ["bundle", "verify", "{missing}"],
        ["ablate", "analyze", "{missing}", "-o", "{tmp}/a.json"],
        ["report", "render", "{missing}", "-o", "{tmp}/r.md"],
    ],
    ids=lambda args: " ".join(a for a in args[:2] if not a.startswith("{")),
)
def test_a_missing_input_file_is_a_usage_error(run_cli, tmp_path, args):
    missing = str(tmp_path / "missing.file")
    result = run_cli(*[a.format(missing=missing, tmp=tmp_path) for a in args])
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "Traceback" not in result.stderr


# -- issue 16's rows: deeply nested study documents were exit 3 (RecursionError) --------

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_gate_on_a_deeply_nested_results_file_is_an_input_error(run_cli, tmp_path):
    study = Path(__file__).resolve().parents[1] / "fixtures" / "study" / "passing"
    deep = tmp_path / "results.json"
    deep.write_bytes(DEEP)
    edd = Path(__file__).resolve().parents[1] / "corpus" / "edd" / "valid" / "minimal.yaml"
    result = run_cli(
        "gate", "--results", deep, "--analysis", study / "analysis.json",
        "--edd", edd, "--trust-dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert f"{deep}: nested deeper than" in result.stderr


def test_bundle_verify_on_a_deeply_nested_manifest_is_a_failed_check(run_cli, tmp_path):
    # The bundle's other members go through the same strict reader (fuzzed in
    # tests/unit/documents/test_fuzz_documents.py).
    from audit.bundle.archive import write_archive

    bundle = tmp_path / "audit.bundle.tar.gz"
    with bundle.open("wb") as target:
        write_archive({"manifest.json": DEEP}, target)
    result = run_cli("bundle", "verify", bundle)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.stderr
    assert "manifest.json: nested deeper than 64 levels" in result.stdout + result.stderr
