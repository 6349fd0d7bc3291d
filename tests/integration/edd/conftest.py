"""Fixtures for the EDD gate tests: session-scoped real SSH keys and a study in a real git repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from edd_ssh_tools import KEY_SPECS, MINIMAL, Key, Study, make_key

if shutil.which("ssh-keygen") is None:  # pragma: no cover - CI installs it (make system-deps)
    pytest.fail("ssh-keygen is required for the EDD integration tests", pytrace=False)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    """One key per supported type (RSA generation is slow, so once per session)."""
    folder = tmp_path_factory.mktemp("keys")
    return {name: make_key(folder, name, spec) for name, spec in KEY_SPECS.items()}


@pytest.fixture(scope="session")
def people(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    """ed25519 keys for the approvers of the policy tests."""
    folder = tmp_path_factory.mktemp("people")
    return {name: make_key(folder, name) for name in ["alice", "bob", "carol", "owner", "mallory"]}


@pytest.fixture
def study(git_repo: Path) -> Study:
    folder = git_repo / "studies" / "toy"
    folder.mkdir(parents=True)
    edd = folder / "edd.yaml"
    edd.write_text(MINIMAL.read_text())
    return Study(repo=git_repo, edd=edd)
