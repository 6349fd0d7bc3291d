"""A project in a subfolder of its repository, as examples/fraud is in this one.

The repository's top level has trust files of its own (a decoy with another key);
the project below it has its own .mlaudit/, dvc.lock and .dvc/. Everything the
project owns must come from the project's folder, and the project must be found
in the protected ref, not in the pull request's work tree.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from protocol_study import APPROVER, git, make_study

from audit.edd import load_edd, verify_edd
from audit.edd.approve import sign_edd

PROJECT = "projects/toy"


@pytest.fixture
def mono(study_template: Path, tmp_path: Path) -> Path:
    """A repository with a decoy trust root at the top and the study in projects/toy."""
    study = make_study(study_template, tmp_path / "study")
    top = tmp_path / "mono"
    shutil.copytree(study.root, top / PROJECT, ignore=shutil.ignore_patterns(".git"))
    git(top, "init", "-q", "-b", "main")
    git(top, "config", "user.email", "test@example.com")
    git(top, "config", "user.name", "Test")
    git(top, "config", "commit.gpgsign", "false")
    decoy = tmp_path / "decoy_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(decoy)], check=True)
    kind, blob = decoy.with_suffix(".pub").read_text().split()[:2]
    (top / ".mlaudit").mkdir()
    (top / ".mlaudit" / "allowed_signers").write_text(
        f'mallory@example.com namespaces="mlaudit-edd" {kind} {blob}\n'
    )
    (top / ".mlaudit" / "policy.yaml").write_text("quorum: 1\n")
    shutil.move(study.key, tmp_path / "reviewer_key")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "monorepo")
    return top


def test_verify_reads_the_projects_own_trust_files(mono: Path, run_cli):
    edd = mono / PROJECT / "edd.yaml"
    result = verify_edd(load_edd(edd), trust_ref="main")
    assert result.passed, result.reasons
    assert result.trust_project == PROJECT
    assert [a.principal for a in result.approvals if a.counted] == [APPROVER]

    cli = run_cli("edd", "verify", str(edd), "--trust-ref", "main", "--json")
    assert cli.exit_code == 0, cli.stderr
    assert json.loads(cli.stdout)["trust_project"] == PROJECT
    text = run_cli("edd", "verify", str(edd), "--trust-ref", "main")
    assert f"trust: {PROJECT}/.mlaudit/ at main @" in text.stdout


def test_the_project_is_found_in_the_trust_ref_not_the_work_tree(mono: Path, tmp_path: Path):
    """A PR that plants its own .mlaudit/ deeper down still meets the project's trust."""
    git(mono, "checkout", "-q", "-b", "attack")
    nested = mono / PROJECT / "nested"
    (nested / ".mlaudit").mkdir(parents=True)
    attacker = tmp_path / "attacker_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(attacker)], check=True)
    kind, blob = attacker.with_suffix(".pub").read_text().split()[:2]
    (nested / ".mlaudit" / "allowed_signers").write_text(
        f'eve@example.com namespaces="mlaudit-edd" {kind} {blob}\n'
    )
    (nested / ".mlaudit" / "policy.yaml").write_text("quorum: 1\n")
    shutil.copy(mono / PROJECT / "edd.yaml", nested / "edd.yaml")
    sign_edd(nested / "edd.yaml", key=attacker, principal="eve@example.com")
    git(mono, "add", "-A")
    git(mono, "commit", "-q", "-m", "my own trust root")

    result = verify_edd(load_edd(nested / "edd.yaml"), trust_ref="main")
    assert not result.passed
    assert result.trust_project == PROJECT  # main's, not the work tree's nested one
    assert [a.verdict for a in result.approvals] != ["valid"]

    # On disk (an unprotected --trust-dir run) the nearest .mlaudit/ is the nested one.
    from audit.edd.trust import locate_project

    assert locate_project(nested) == nested.resolve()
    assert locate_project(nested, "main") == (mono / PROJECT).resolve()


def test_trust_files_missing_in_the_ref_name_the_projects_path(mono: Path, run_cli):
    git(mono, "rm", "-q", f"{PROJECT}/.mlaudit/allowed_signers")
    git(mono, "commit", "-q", "-m", "drop signers")
    cli = run_cli("edd", "verify", str(mono / PROJECT / "edd.yaml"), "--trust-ref", "main")
    assert cli.exit_code != 0
    # policy.yaml is still there, so the project is still projects/toy.
    assert f"has no {PROJECT}/.mlaudit/allowed_signers" in cli.stderr


def test_ablate_run_from_the_top_level_runs_the_project(mono: Path, run_cli, tmp_path: Path):
    out = tmp_path / "out"
    edd = f"{PROJECT}/edd.yaml"
    result = run_cli(
        "ablate", "run", str(mono / edd), "--trust-ref", "main", "--out", str(out), "--no-cache"
    )
    assert result.exit_code == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert all(t["status"] == "succeeded" for t in results["trials"]), results["trials"]
    assert results["edd"]["path"] == "edd.yaml"  # relative to the project
    provenance = results["provenance"]
    assert provenance["dvc_status_clean"] is True
    assert set(provenance["data"]) == {"data/train.csv"}
    assert provenance["git"]["commit"] == git(mono, "rev-parse", "HEAD").strip()
    # Trials ran in the project (train.py is found there) and the trust was the project's.
    assert results["approvals"][0]["principal"] == APPROVER


def test_ablate_run_refuses_stale_project_data(mono: Path, run_cli, tmp_path: Path):
    (mono / PROJECT / "data" / "train.csv").write_text("x,y\n9,9\n")
    result = run_cli(
        "ablate", "run", str(mono / PROJECT / "edd.yaml"), "--trust-ref", "main",
        "--out", str(tmp_path / "out"), "--no-cache", "--allow-dirty",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "data does not match what DVC recorded" in result.stderr
    assert "data/train.csv" in result.stderr
