"""`mlaudit init` in a real git repository: what it writes, asks, keeps and refuses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from audit.edd import load_edd

FLAGS = (
    "--yes", "--command", "python train.py", "--baseline", "features.pca=true",
    "--component", "pca:features.pca=false", "--metric", "f1", "--data", "data/x.csv",
    "--owner", "dev@example.com",
)  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_writes_a_valid_edd_trust_files_and_gitignore(repo: Path, run_cli):
    (repo / ".gitignore").write_text("__pycache__/\n/out/\n")
    result = run_cli("init", *FLAGS)
    assert result.exit_code == 0, result.stderr
    edd = load_edd(repo / "edd.yaml")
    assert edd.document["protocol"]["command"] == ["python", "train.py", "{overrides}"]
    assert edd.document["reproducibility"]["arm"] == "baseline"
    assert (repo / ".mlaudit" / "policy.yaml").read_text().count("quorum: 1") == 1
    assert "namespaces=" in (repo / ".mlaudit" / "allowed_signers").read_text()
    ignore = (repo / ".gitignore").read_text()
    assert ignore.startswith("__pycache__/\n/out/\n")
    assert ignore.count("/out/") == 1
    assert "/.mlaudit/cache/" in ignore
    assert "Left to do:" in result.stdout
    assert "keys: each approver runs `ssh-keygen" in result.stdout


def test_never_overwrites_without_force(repo: Path, run_cli):
    assert run_cli("init", *FLAGS).exit_code == 0
    (repo / "edd.yaml").write_text("# mine\n")
    ignore = (repo / ".gitignore").read_text()
    again = run_cli("init", *FLAGS)
    assert again.exit_code == 0
    assert "kept     edd.yaml (exists; --force overwrites it)" in again.stdout
    assert (repo / "edd.yaml").read_text() == "# mine\n"
    assert (repo / ".gitignore").read_text() == ignore  # nothing missing: nothing appended
    forced = run_cli("init", *FLAGS, "--force")
    assert "wrote    edd.yaml" in forced.stdout
    assert (repo / "edd.yaml").read_text().startswith("# yaml-language-server: $schema=")


def test_without_a_terminal_it_names_every_missing_answer(repo: Path, run_cli):
    result = run_cli("init", "--yes", "--command", "python train.py")
    assert result.exit_code == 2
    for flag in ("--component", "--baseline", "--metric", "--data", "--owner"):
        assert flag in result.stderr
    assert not (repo / "edd.yaml").exists()


def test_an_override_of_a_key_the_baseline_lacks_is_refused_with_its_pointer(repo, run_cli):
    flags = [f if f != "pca:features.pca=false" else "pca:features.pcaa=false" for f in FLAGS]
    result = run_cli("init", *flags)
    assert result.exit_code == 1
    assert "/protocol/components/0/ablate/0" in result.stderr
    assert not (repo / "edd.yaml").exists()


def test_refuses_outside_git(tmp_path: Path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("init", *FLAGS)
    assert result.exit_code == 1
    assert "not inside a git repository" in result.stderr


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_ci_files_go_to_the_top_level_of_a_monorepo(repo: Path, run_cli, ci: str):
    project = repo / "models" / "digits"
    project.mkdir(parents=True)
    result = run_cli("init", *FLAGS, "--dir", project, "--ci", ci)
    assert result.exit_code == 0, result.stderr
    assert (repo / "ci" / "docker" / "Dockerfile").is_file()
    if ci == "github":
        caller = (repo / ".github" / "workflows" / "audit.yml").read_text()
        assert "working-directory: models/digits" in caller
        assert (repo / ".github" / "workflows" / "mlaudit-publish.yml").is_file()
    else:
        assert "MLAUDIT_DIR: models/digits" in (repo / ".gitlab-ci.yml").read_text()
    assert (project / "edd.yaml").is_file()


def test_asks_for_what_the_flags_leave_out(repo: Path, monkeypatch):
    from click.testing import CliRunner

    import audit.cli.init as init_cli

    monkeypatch.setattr(init_cli, "_at_a_terminal", lambda: True)
    answers = "\n".join(
        [
            "python train.py",  # command
            "pca:features.pca=false",  # a component
            "",  # no more components
            "true",  # features.pca= (the key the component overrides)
            "",  # no more defaults
            "f1:maximize",  # primary metric
            "data/x.csv",
            "",
            "dev@example.com",
            "",
            "",  # no approver yet
            "gitlab",
        ]
    )
    result = CliRunner().invoke(init_cli.init, [], input=answers + "\n")
    assert result.exit_code == 0, result.output
    document = load_edd(repo / "edd.yaml").document
    assert document["protocol"]["baseline"] == {"features": {"pca": True}}
    assert document["protocol"]["components"] == [{"name": "pca", "ablate": ["features.pca=false"]}]
    assert document["metrics"]["primary"] == {"name": "f1", "goal": "maximize"}
    assert (repo / ".gitlab-ci.yml").is_file()
