"""The fraud EDD, its quick variant, the trust policy and the pre-commit hook."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLE, load_script
from jsonschema import Draft202012Validator

REPO = EXAMPLE.parent.parent
EDDS = [EXAMPLE / "edd.yaml", EXAMPLE / "edd.quick.yaml"]


def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((REPO / "schemas" / f"{name}.schema.json").read_text()))


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


@pytest.mark.parametrize("path", EDDS, ids=lambda p: p.name)
def test_edd_is_valid_against_the_schema_and_the_cli(path: Path, run_cli: Any) -> None:
    errors = [e.message for e in _schema("edd").iter_errors(_load(path))]
    assert errors == []
    result = run_cli("edd", "validate", path)
    assert result.exit_code == 0, result.stderr
    assert "valid" in result.stdout


@pytest.mark.parametrize("path", [*EDDS, EXAMPLE / ".mlaudit" / "policy.yaml"], ids=str)
def test_editors_find_the_schema(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, first
    assert (path.parent / match.group(1)).resolve().is_file()


def test_quick_variant_changes_only_size_not_the_study() -> None:
    full, quick = (_load(p) for p in EDDS)
    for document in (full, quick):
        for key in ("id", "title", "budget"):
            document.pop(key)
        command = document["protocol"].pop("command")
        assert command[:2] == ["python", "train.py"]
        assert command[-1] == "{overrides}"
    assert full == quick


def test_baseline_is_what_train_py_runs_by_default() -> None:
    """Arms pass only their overrides, so train.py's defaults must BE the signed baseline."""
    train = load_script("train")
    document = _load(EDDS[0])

    def check(expected: dict[str, Any], actual: dict[str, Any], where: str) -> None:
        for key, value in expected.items():
            if isinstance(value, dict):
                check(value, actual[key], f"{where}{key}.")
            else:
                assert actual[key] == value, f"{where}{key}"

    check(document["protocol"]["baseline"], train.DEFAULTS, "")
    protocol = document["protocol"]
    overrides = [o for c in protocol["components"] for o in c["ablate"]]
    overrides += [o for r in protocol["references"] for o in r["overrides"]]
    for override in overrides:
        train.apply_overrides(train.DEFAULTS, [override])  # raises on an unknown key


def test_data_paths_are_dvc_outputs() -> None:
    lock = _load(EXAMPLE / "dvc.lock")
    outs = {o["path"] for stage in lock["stages"].values() for o in stage["outs"]}
    for path in EDDS:
        assert {d["path"] for d in _load(path)["data"]} <= outs


def test_policy_is_valid_and_the_edds_meet_it() -> None:
    policy = _load(EXAMPLE / ".mlaudit" / "policy.yaml")
    assert [e.message for e in _schema("policy").iter_errors(policy)] == []
    for path in EDDS:
        document = _load(path)
        assert len(document["protocol"]["seeds"]) >= policy["min_seeds"]
        assert set(document["owners"]).isdisjoint(policy["roles"]["ml-lead"])


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = (h for h in hooks if h["id"] == "mlaudit-edd-validate")
    return dict(hook)


def _run_hook(*files: Path) -> subprocess.CompletedProcess[str]:
    # What pre-commit runs: the entry, from the environment it installed, plus the files.
    argv = shlex.split(_hook()["entry"])
    assert argv[0] == "mlaudit"
    program = str(Path(sys.executable).parent / "mlaudit")
    return subprocess.run(
        [program, *argv[1:], *map(str, files)], capture_output=True, text=True, check=False
    )


def test_pre_commit_hook_selects_edd_files() -> None:
    pattern = re.compile(_hook()["files"])
    for name in ("edd.yaml", "examples/fraud/edd.quick.yaml", "studies/edd-v2.yml"):
        assert pattern.search(name), name
    for name in ("params.yaml", "dvc.yaml", "examples/fraud/myedd.yaml", "edd.yaml.bak"):
        assert not pattern.search(name), name


def test_pre_commit_hook_passes_valid_and_fails_invalid_edds(tmp_path: Path) -> None:
    assert _run_hook(*EDDS).returncode == 0
    broken = tmp_path / "edd.yaml"
    document = _load(EDDS[0])
    del document["decision"]
    broken.write_text(yaml.safe_dump(document))
    proc = _run_hook(EDDS[0], broken)
    assert proc.returncode == 1
    assert str(broken) in proc.stderr + proc.stdout


def test_the_committed_approvals_pass_this_repositorys_own_audit(run_cli: Any) -> None:
    """What .github/workflows/audit.yml and .gitlab-ci.yml run first, from the repo's top.

    The EDD is in examples/fraud, below the top level: its trust files must be found
    in the commit at examples/fraud/.mlaudit/. After editing edd.yaml, re-sign with
    examples/fraud/sign_example.py and commit allowed_signers and approvals/.
    """
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    result = run_cli("edd", "verify", EXAMPLE / "edd.yaml", "--trust-ref", head, "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    verification = json.loads(result.stdout)
    assert verification["trust_project"] == "examples/fraud"
    assert verification["approvers"] == 2
