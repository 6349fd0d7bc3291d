"""Fixtures for publishing tests: the GitHub and GitLab fakes, a fake clock, settings."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from github_fake import FakeGitHub
from gitlab_fake import FakeGitLab


class FakeClock:
    """Monotonic and wall clocks that only move when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.wall = 1_800_000_000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def github(httpserver) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(httpserver)
    yield fake
    assert fake.violations == [], "requests/responses that break GitHub's OpenAPI description"


@pytest.fixture
def gitlab(httpserver) -> Iterator[FakeGitLab]:
    fake = FakeGitLab(httpserver)
    yield fake
    assert fake.violations == [], "requests that break GitLab's documented API"
