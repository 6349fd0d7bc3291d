"""Fixtures for protocol integration tests: a real git + DVC study with a signed EDD."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol_study import Study, make_study


@pytest.fixture
def study(git_repo: Path) -> Study:
    return make_study(git_repo)


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Trials leave <arm>~<seed>~<pid>.start/.done files here (counted side effects)."""
    directory = tmp_path / "markers"
    directory.mkdir()
    monkeypatch.setenv("STUDY_MARKERS", str(directory))
    return directory
