"""Fixtures for protocol integration tests: a real git + DVC study with a signed EDD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from protocol_study import Study, make_study, make_template


@pytest.fixture(scope="session")
def study_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """git init, dvc init + add, an approver key and trust files: built once, copied per test."""
    return make_template(tmp_path_factory.mktemp("template") / "repo")


@pytest.fixture
def new_study(study_template: Path, tmp_path: Path) -> Callable[..., Study]:
    def make(document: dict[str, Any] | None = None, *, sign: bool = True) -> Study:
        return make_study(study_template, tmp_path / "repo", document, sign=sign)

    return make


@pytest.fixture
def study(new_study: Callable[..., Study]) -> Study:
    return new_study()


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Trials leave <arm>~<seed>~<pid>.start/.done files here (counted side effects)."""
    directory = tmp_path / "markers"
    directory.mkdir()
    monkeypatch.setenv("STUDY_MARKERS", str(directory))
    return directory
