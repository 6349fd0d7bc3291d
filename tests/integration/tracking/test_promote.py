"""Gated promotion on a real study: git, signed EDD, `ablate run`, gate, bundle, MLflow server."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
from toystudy import ToyStudy, build_toy_study, mlaudit, run_pipeline

from audit.bundle import layout
from audit.bundle.archive import read_archive, write_archive
from audit.errors import CheckFailed
from audit.tracking import promote as promotion

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, mlflow_server: Any) -> ToyStudy:
    toy = build_toy_study(tmp_path_factory.mktemp("promote"), edd_id=f"p-{uuid.uuid4().hex[:8]}")
    run_pipeline(toy, tracking_uri=mlflow_server.uri)
    return toy


@pytest.fixture(scope="module")
def bundle(study: ToyStudy, mlflow_server: Any) -> Path:
    edd_id = json.loads((study.out / "results.json").read_text())["edd"]["id"]
    target = study.out.parent / "bundle.tar.gz"
    mlaudit(
        "bundle",
        "create",
        "-o",
        target,
        "--edd",
        study.edd,
        "--dir",
        study.out,
        "--trust-ref",
        "main",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment",
        edd_id,
        cwd=study.repo,
    )
    return target


@pytest.fixture
def client(mlflow_server: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server.uri)


def trial_run(study: ToyStudy) -> str:
    trials = json.loads((study.out / "results.json").read_text())["trials"]
    return str(next(t["mlflow_run_id"] for t in trials if t.get("mlflow_run_id")))


def register(client: Any, run_id: str) -> tuple[str, str]:
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source, run_id=run_id)
    return name, str(version.version)


def test_a_version_from_a_sealed_trial_of_a_passing_bundle_is_promoted(
    study: ToyStudy, bundle: Path, client: Any
) -> None:
    name, version = register(client, trial_run(study))
    done = promotion.promote(client, bundle, name, version, "champion")
    assert client.get_model_version_by_alias(name, "champion").version == version
    tags = client.get_model_version(name, version).tags
    assert tags[promotion.PROMOTED_TAG] == done.bundle_sha256


def test_a_version_from_another_run_is_refused(bundle: Path, client: Any) -> None:
    experiment = client.create_experiment(f"other-{uuid.uuid4().hex}")
    other = client.create_run(experiment).info.run_id
    client.set_terminated(other)
    name, version = register(client, other)
    with pytest.raises(CheckFailed) as caught:
        promotion.promote(client, bundle, name, version, "champion")
    assert "which this bundle does not name" in caught.value.message
    assert client.get_registered_model(name).aliases == {}


def test_a_bundle_that_does_not_verify_is_refused(
    study: ToyStudy, bundle: Path, client: Any, tmp_path: Path
) -> None:
    # The gate result was rewritten after the bundle was made: the manifest no longer matches.
    members = read_archive(bundle)
    gate = json.loads(members[layout.GATE])
    gate["passed"] = True
    members[layout.GATE] = json.dumps(gate).encode()
    forged = tmp_path / "forged.tar.gz"
    with forged.open("wb") as handle:
        write_archive(members, handle)
    name, version = register(client, trial_run(study))
    with pytest.raises(CheckFailed) as caught:
        promotion.promote(client, forged, name, version, "champion")
    assert "the bundle does not verify" in caught.value.message
    assert client.get_registered_model(name).aliases == {}


def test_the_cli_promotes_on_a_passing_bundle_and_refuses_a_forged_one(
    study: ToyStudy, bundle: Path, client: Any, mlflow_server: Any, run_cli: Any, tmp_path: Path
) -> None:
    name, version = register(client, trial_run(study))
    args = ["--tracking-uri", mlflow_server.uri, "--model", name, "--version", version]
    members = read_archive(bundle)
    members[layout.GATE] = members[layout.GATE].replace(b'"passed"', b'"passed" ', 1)
    forged = tmp_path / "forged.tar.gz"
    with forged.open("wb") as handle:
        write_archive(members, handle)
    refused = run_cli("promote", *args, "--bundle", forged)
    assert refused.exit_code == 1
    assert "the bundle does not verify" in refused.stderr
    assert client.get_registered_model(name).aliases == {}
    done = run_cli("promote", *args, "--bundle", bundle, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["alias"] == "champion"
    assert client.get_model_version_by_alias(name, "champion").version == version
