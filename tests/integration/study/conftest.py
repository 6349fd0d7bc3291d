"""The study the gate and bundle tests share: run once per session, it is the slow part."""

from __future__ import annotations

import uuid

import pytest
from toystudy import ToyStudy, build_toy_study, run_pipeline


@pytest.fixture(scope="session")
def study(tmp_path_factory, mlflow_server) -> ToyStudy:
    """One study run through the whole pipeline, logged and sealed on the session server."""
    root = tmp_path_factory.mktemp("study")
    toy = build_toy_study(root, edd_id=f"toy-{uuid.uuid4().hex[:8]}")
    run_pipeline(toy, tracking_uri=mlflow_server.uri)
    return toy
