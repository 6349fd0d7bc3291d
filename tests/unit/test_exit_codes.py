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
