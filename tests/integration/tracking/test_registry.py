"""The append-only model registry in-process: nothing deleted or rewritten, alias moves kept."""

from __future__ import annotations

import sqlite3
import uuid
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mlflow.store.model_registry.sqlalchemy_store")

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SADeprecationWarning")

from mlflow.exceptions import MlflowException  # noqa: E402

from audit.tracking import registry  # noqa: E402
from audit.tracking.registry import AppendOnlyRegistryStore  # noqa: E402
from audit.tracking.store import AppendOnlyTrackingStore  # noqa: E402


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "mlflow.db"
    AppendOnlyTrackingStore(f"mlaudit+sqlite:///{path}", str(path.parent / "art"))
    return path


@pytest.fixture(scope="module")
def store(db_path: Path) -> AppendOnlyRegistryStore:
    return AppendOnlyRegistryStore(f"mlaudit+sqlite:///{db_path}")


def two_versions(store: AppendOnlyRegistryStore) -> str:
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    store.create_registered_model(name)
    for run in ("a" * 32, "b" * 32):
        store.create_model_version(name, f"file:///models/{run}", run_id=run)
    return name


def current_aliases(store: AppendOnlyRegistryStore) -> dict[tuple[str, str], int]:
    return {
        (model.name, alias): int(version)
        for model in store.search_registered_models(max_results=1000)
        for alias, version in model.aliases.items()
    }


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s, n: s.delete_model_version(n, "1"), "deleting a model version"),
        (lambda s, n: s.delete_registered_model(n), "deleting a registered model"),
        (lambda s, n: s.rename_registered_model(n, "other"), "renaming a registered model"),
        (lambda s, n: s.delete_registered_model_alias(n, "challenger"), "deleting an alias"),
    ],
)
def test_deletes_and_renames_are_refused_in_words(
    store: AppendOnlyRegistryStore, call: object, words: str
) -> None:
    name = two_versions(store)
    store.set_registered_model_alias(name, "challenger", "1")
    with pytest.raises(MlflowException) as caught:
        call(store, name)  # type: ignore[operator]
    assert caught.value.error_code == "RESOURCE_CONFLICT"
    assert words in caught.value.message
    assert sorted(int(v.version) for v in store.search_model_versions(f"name = '{name}'")) == [1, 2]
    assert store.get_registered_model(name).aliases == {"challenger": 1}


def test_alias_moves_are_appended_to_a_chained_history(store: AppendOnlyRegistryStore) -> None:
    name = two_versions(store)
    store.set_registered_model_alias(name, "challenger", "1")
    store.set_registered_model_alias(name, "challenger", "2")
    store.transition_model_version_stage(name, "2", "Production", False)
    mine = [m for m in store.moves() if m.name == name]
    assert [(m.alias, m.version, m.run_id) for m in mine] == [
        ("challenger", 1, "a" * 32),
        ("challenger", 2, "b" * 32),
        ("stage:Production", 2, "b" * 32),
    ]
    assert registry.verify_moves(store.moves(), current_aliases(store)) == []


def test_direct_edits_are_refused_by_triggers_and_named_by_verify(
    store: AppendOnlyRegistryStore, db_path: Path
) -> None:
    name = two_versions(store)
    store.set_registered_model_alias(name, "challenger", "1")
    with sqlite3.connect(db_path, timeout=30) as db:
        for statement in (
            f"DELETE FROM model_versions WHERE name = '{name}'",
            f"UPDATE model_versions SET run_id = 'c' WHERE name = '{name}'",
            f"UPDATE {registry.MOVES_TABLE} SET version = 2 WHERE name = '{name}'",
            f"DELETE FROM {registry.MOVES_TABLE}",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                db.execute(statement)
        # Moving the alias row itself is not refused by SQL; verify names it.
        db.execute(
            "UPDATE registered_model_aliases SET version = 2 WHERE name = ? AND alias = ?",
            (name, "challenger"),
        )
    findings = registry.verify_moves(store.moves(), current_aliases(store))
    assert findings == [
        f"alias {name}@challenger points at version 2, but its history says 1: "
        "it was moved outside the registry"
    ]


def test_a_changed_move_breaks_the_chain() -> None:
    moves = []
    previous = "0" * 64
    for seq, version in enumerate((1, 2)):
        digest = registry.move_sha256(seq, "m", "challenger", version, None, 5, previous)
        moves.append(registry.Move(seq, "m", "challenger", version, None, 5, previous, digest))
        previous = digest
    assert registry.verify_moves(moves, {("m", "challenger"): 2}) == []
    forged = [moves[0], registry.Move(1, "m", "challenger", 1, None, 5, moves[0].sha256, previous)]
    assert registry.verify_moves(forged, {("m", "challenger"): 1}) == [
        "alias history: move 1 (m@challenger) changed"
    ]


@pytest.mark.postgres
def test_on_postgresql_versions_stay_and_moves_are_kept(postgres_uri: str, tmp_path: Path) -> None:
    import psycopg

    AppendOnlyTrackingStore(f"mlaudit+{postgres_uri}", str(tmp_path))
    store = AppendOnlyRegistryStore(f"mlaudit+{postgres_uri}")
    name = two_versions(store)
    store.set_registered_model_alias(name, "challenger", "2")
    with psycopg.connect(postgres_uri, autocommit=True) as db:
        for statement in (
            "DELETE FROM model_versions WHERE name = %(n)s",
            f"DELETE FROM {registry.MOVES_TABLE} WHERE name = %(n)s",
        ):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
                db.execute(statement, {"n": name})
    assert registry.verify_moves(store.moves(), current_aliases(store)) == []


def test_the_allow_list_names_only_methods_mlflow_has() -> None:
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

    assert sorted(n for n in registry.ALLOWED - {"moves"} if not hasattr(SqlAlchemyStore, n)) == []


@pytest.fixture
def rest_api(store: AppendOnlyRegistryStore, monkeypatch: pytest.MonkeyPatch) -> object:
    """MLflow's own REST handlers (Flask, in-process) in front of the append-only registry.

    `mlflow server` picks the registry through the `mlflow.model_registry_store` entry
    point; here the handlers' store is set directly, so no reinstall is needed.
    """
    from mlflow.server import app, handlers

    monkeypatch.setattr(handlers, "_model_registry_store", store)
    return app.test_client()


def test_over_rest_a_version_delete_is_refused_and_an_alias_move_is_kept(
    store: AppendOnlyRegistryStore, rest_api: object
) -> None:
    client: object = rest_api
    name = two_versions(store)
    base = "/api/2.0/mlflow"
    deleted = client.delete(  # type: ignore[attr-defined]
        f"{base}/model-versions/delete", json={"name": name, "version": "1"}
    )
    assert deleted.status_code == 409, deleted.get_data(as_text=True)
    assert "deleting a model version is refused" in deleted.get_json()["message"]
    moved = client.post(  # type: ignore[attr-defined]
        f"{base}/registered-models/alias",
        json={"name": name, "alias": "challenger", "version": "2"},
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    unset = client.delete(  # type: ignore[attr-defined]
        f"{base}/registered-models/alias", json={"name": name, "alias": "challenger"}
    )
    assert unset.status_code == 409, unset.get_data(as_text=True)
    assert [(m.alias, m.version) for m in store.moves() if m.name == name] == [("challenger", 2)]
    assert store.get_registered_model(name).aliases == {"challenger": 2}
