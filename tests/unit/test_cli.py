"""The CLI skeleton: entry points, help, exit codes, error mapping, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from audit import errors
from audit._resources import load_schema
from audit.cli import main as main_module


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0
    assert "mlaudit" in result.stdout


def test_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for name in main_module.SUBCOMMANDS:
        assert name in result.stdout


def test_unknown_command_is_usage_error(run_cli):
    result = run_cli("no-such-command")
    assert result.exit_code == 2
    assert "No such command" in result.stderr


def test_python_dash_m_works(run_mlaudit):
    proc = run_mlaudit("--version")
    assert proc.returncode == 0, proc.stderr
    assert "mlaudit" in proc.stdout


def test_only_the_program_itself_freezes_what_is_alive_before_it_exits(monkeypatch, capsys):
    import gc

    assert gc.get_freeze_count() == 0
    assert main_module.main(["--version"]) == 0  # in-process callers (tests) keep their GC
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(sys, "argv", ["mlaudit", "--version"])
    try:
        assert main_module.main() == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert "mlaudit" in capsys.readouterr().out


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from audit.cli.main import main; "
        "rc = main(['--help']); "
        "heavy = [m for m in ('mlflow', 'dvc', 'numpy', 'scipy', 'pandas', 'sqlalchemy') "
        "if m in sys.modules]; "
        "print('HEAVY=' + ','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in proc.stdout or proc.stdout.strip().endswith("HEAVY=")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InputError("bad input"), 1),
        (errors.CheckFailed("no quorum"), 1),
        (errors.UsageError("wrong flags"), 2),
        (errors.InternalError("oops"), 3),
    ],
)
def test_errors_map_to_exit_codes(monkeypatch, capsys, error, code):
    @click.command()
    def boom() -> None:
        raise error

    monkeypatch.setattr(main_module.cli, "commands", {"boom": boom})
    assert main_module.main(["boom"]) == code
    err = capsys.readouterr().err
    assert err.startswith("mlaudit: error: ")
    assert "Traceback" not in err


def test_unexpected_exception_is_internal_without_traceback(monkeypatch, capsys):
    @click.command()
    def boom() -> None:
        raise RuntimeError("bug")

    monkeypatch.delenv("MLAUDIT_DEBUG", raising=False)
    monkeypatch.setattr(main_module.cli, "commands", {"boom": boom})
    assert main_module.main(["boom"]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err
    assert errors.REPORT_URL in err
    assert "Traceback" not in err


def test_validation_failed_lists_every_problem():
    error = errors.ValidationFailed("edd.yaml", [("/id", "too long"), ("/budget", "missing")])
    assert error.user_message() == "edd.yaml:/id: too long (and 1 more)"
    assert error.details() == ["edd.yaml:/id: too long", "edd.yaml:/budget: missing"]
    assert json.loads(json.dumps(error.to_json()))["exit_code"] == 1


@pytest.mark.parametrize("name", ["edd", "results", "analysis"])
def test_schemas_ship_and_are_valid(name):
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(load_schema(name))


def test_edd_canonical_json_matches_the_raw_bytes(run_mlaudit):
    import hashlib
    from pathlib import Path

    edd = Path(__file__).resolve().parents[1] / "corpus" / "edd" / "valid" / "minimal.yaml"
    raw = subprocess.run(
        [sys.executable, "-m", "audit", "edd", "canonical", str(edd)],
        capture_output=True,
        check=True,
    ).stdout
    document = json.loads(run_mlaudit("edd", "canonical", edd, "--json").stdout)
    assert document["canonical"].encode() == raw
    assert document["sha256"] == hashlib.sha256(raw).hexdigest()
