"""demo.py's workspace: trust root on main, the EDD on a branch, rebuilt bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE, load_script

demo_module = load_script("demo")


def _git(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(workspace), *args], capture_output=True, text=True, check=False
    )


def _build(root: Path, *, quick: bool) -> object:
    demo = demo_module.Demo(quick=quick, workers=2, root=root)
    demo_module.prepare_env(demo)
    demo_module.make_keys(demo)
    demo_module.build_workspace(demo)
    return demo


def test_workspace_puts_trust_on_main_and_the_edd_on_a_branch(tmp_path: Path) -> None:
    demo = _build(tmp_path, quick=True)
    ws = demo.ws  # type: ignore[attr-defined]
    assert _git(ws, "branch", "--show-current").stdout.strip() == demo_module.BRANCH
    assert _git(ws, "status", "--porcelain").stdout == ""
    signers = _git(ws, "show", "main:.mlaudit/allowed_signers").stdout
    principals = [line.split()[0] for line in signers.splitlines() if not line.startswith("#")]
    assert principals == [p for _, p, _ in demo_module.APPROVERS]
    assert _git(ws, "show", "main:.mlaudit/policy.yaml").returncode == 0
    assert _git(ws, "show", "main:edd.yaml").returncode != 0
    # The quick variant is what the branch proposes, under the usual name.
    assert "fraud-device-graph-quick" in (ws / "edd.yaml").read_text()
    assert not (ws / "data").exists()
    assert not (ws / "demo.py").exists()
    # Keys stay outside the workspace and are never part of any commit.
    assert _git(ws, "log", "--all", "--name-only", "--format=").stdout.count("keys/") == 0


def test_second_build_reuses_keys_and_yields_the_same_commits(tmp_path: Path) -> None:
    first = _build(tmp_path, quick=False)
    head = _git(first.ws, "rev-parse", "HEAD").stdout  # type: ignore[attr-defined]
    key = (tmp_path / "keys" / "risk").read_bytes()
    second = _build(tmp_path, quick=False)
    assert (tmp_path / "keys" / "risk").read_bytes() == key
    # Same commits, so the trial cache (keyed on the code fingerprint) is reused.
    assert _git(second.ws, "rev-parse", "HEAD").stdout == head  # type: ignore[attr-defined]


def test_demo_help() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py"), "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert "--quick" in proc.stdout


def test_a_missing_command_stops_the_demo_with_a_clear_message(tmp_path: Path) -> None:
    demo = demo_module.Demo(quick=True, workers=2, root=tmp_path)
    demo_module.prepare_env(demo)
    with pytest.raises(demo_module.DemoFailed, match="`mlaudit no-such-command` is not available"):
        demo_module.require(demo, "no-such-command")
    demo_module.require(demo, "edd", "verify")  # present: no error
    # A step that fails says whether the command is missing or failed on its own.
    missing = demo_module.failure(demo, demo_module.mlaudit_argv("nope", "x.yaml"), "nope", None)
    assert "`mlaudit nope` is not available" in str(missing)
    broken = subprocess.CompletedProcess(["x"], 1, "", "mlaudit: error: edd.yaml: bad\n")
    failed = demo_module.failure(demo, demo_module.mlaudit_argv("edd", "verify"), "verify", broken)
    assert "exit code 1" in str(failed)
    assert "edd.yaml: bad" in str(failed)


def test_commands_print_as_a_user_types_them() -> None:
    argv = demo_module.mlaudit_argv("edd", "verify", str(demo_module.REPO / ".demo" / "x.yaml"))
    assert demo_module.display(argv) == "mlaudit edd verify .demo/x.yaml"
