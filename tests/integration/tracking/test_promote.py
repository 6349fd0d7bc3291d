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
from audit.errors import CheckFailed, Location
from audit.tracking import promote as promotion

PROMOTED = promotion.PROMOTED_TAG

# The model the toy study's EDD lets it promote; each test registers a new version of it.
MODEL = f"toy-fraud-{uuid.uuid4().hex[:8]}"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning"),
]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, mlflow_server: Any) -> ToyStudy:
    toy = build_toy_study(
        tmp_path_factory.mktemp("promote"),
        edd_id=f"p-{uuid.uuid4().hex[:8]}",
        promotion=f"promotion: {{model: {MODEL}, aliases: [champion, challenger]}}\n",
    )
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


def register(client: Any, run_id: str, name: str = MODEL) -> tuple[str, str]:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source, run_id=run_id)
    return name, str(version.version)


def champion(client: Any, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException:
        return None


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
    assert champion(client, name) != version


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
    assert champion(client, name) != version


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
    assert champion(client, name) != version
    done = run_cli("promote", *args, "--bundle", bundle, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["alias"] == "champion"
    assert client.get_model_version_by_alias(name, "champion").version == version


def test_a_model_or_alias_the_edd_does_not_name_is_refused(
    study: ToyStudy, bundle: Path, client: Any
) -> None:
    other, version = register(client, trial_run(study), name=f"other-{uuid.uuid4().hex[:8]}")
    with pytest.raises(CheckFailed) as caught:
        promotion.promote(client, bundle, other, version, "champion")
    assert f"lets it promote model {MODEL!r}, not {other!r}" in caught.value.message
    name, version = register(client, trial_run(study))
    with pytest.raises(CheckFailed) as caught:
        promotion.promote(client, bundle, name, version, "production")
    assert "move the alias 'champion' or 'challenger'" in caught.value.message
    assert PROMOTED not in client.get_model_version(name, version).tags


def test_a_study_whose_edd_names_no_promotion_promotes_nothing(bundle: Path) -> None:
    # The same signed EDD without its `promotion` block (checked before any server call).
    members = read_archive(bundle)
    manifest = json.loads(members[layout.MANIFEST])
    edd_member = manifest["layout"]["edd"]
    text = members[edd_member].decode()
    members[edd_member] = text[: text.index("promotion:")].encode()
    with pytest.raises(CheckFailed) as caught:
        promotion.check_allowed(members, edd_member, MODEL, "champion", Location("b"))
    assert "names no `promotion`" in caught.value.message
    promotion.check_allowed(read_archive(bundle), edd_member, MODEL, "champion", Location("b"))


def test_the_registry_refuses_a_gated_alias_move_that_promote_did_not_make(
    study: ToyStudy, client: Any
) -> None:
    from mlflow.exceptions import MlflowException

    name, version = register(client, trial_run(study))
    # Straight through the REST API, as the UI or any client would.
    with pytest.raises(MlflowException) as caught:
        client.set_registered_model_alias(name, "champion", version)
    assert caught.value.error_code == "RESOURCE_CONFLICT"
    assert "'champion' is gated and this version was never promoted" in caught.value.message
    assert "mlaudit promote" in caught.value.message
    # A forged promotion tag on a version from an unsealed run does not get through either.
    experiment = client.create_experiment(f"unsealed-{uuid.uuid4().hex}")
    unsealed = client.create_run(experiment).info.run_id
    other, other_version = register(client, unsealed, name=f"u-{uuid.uuid4().hex[:8]}")
    client.set_model_version_tag(other, other_version, PROMOTED, "0" * 64)
    with pytest.raises(MlflowException) as caught:
        client.set_registered_model_alias(other, "champion", other_version)
    assert "is not a sealed run" in caught.value.message
    # Other aliases stay free, and every move is kept.
    client.set_registered_model_alias(name, "candidate", version)
    assert client.get_model_version_by_alias(name, "candidate").version == version


def test_the_promotion_record_is_write_once(study: ToyStudy, bundle: Path, client: Any) -> None:
    from mlflow.exceptions import MlflowException

    name, version = register(client, trial_run(study))
    done = promotion.promote(client, bundle, name, version, "challenger")
    with pytest.raises(MlflowException) as caught:
        client.set_model_version_tag(name, version, PROMOTED, "f" * 64)
    assert "that record is write-once" in caught.value.message
    assert client.get_model_version(name, version).tags[PROMOTED] == done.bundle_sha256
    with pytest.raises(MlflowException) as caught:
        client.delete_model_version(name, version)
    assert caught.value.error_code == "RESOURCE_CONFLICT"
