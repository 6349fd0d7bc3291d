"""What `ManagedServer` hands the `mlflow server` process in its environment."""

from __future__ import annotations

import pytest

from audit.tracking.server import POSTGRES_POOL, ManagedServer

POSTGRES = "mlaudit+postgresql://u:p@127.0.0.1:5432/db"


@pytest.fixture(autouse=True)
def _no_pool_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in POSTGRES_POOL:
        monkeypatch.delenv(key, raising=False)


def test_postgresql_server_keeps_a_pool_for_many_loggers() -> None:
    env = ManagedServer(backend_store_uri=POSTGRES).environment()
    assert env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] == "15"
    assert env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] == "10"
    assert env["MLFLOW_BACKEND_STORE_URI"] == POSTGRES


def test_driver_suffix_is_postgresql_too() -> None:
    env = ManagedServer(backend_store_uri=POSTGRES.replace("ql:", "ql+psycopg:")).environment()
    assert env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] == "15"


def test_sqlite_server_gets_no_pool_settings() -> None:
    env = ManagedServer(backend_store_uri="mlaudit+sqlite:////tmp/x/mlflow.db").environment()
    assert not set(POSTGRES_POOL) & set(env)


def test_the_users_pool_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "3")
    env = ManagedServer(backend_store_uri=POSTGRES).environment()
    # Not overridden: the server inherits the user's value from our environment.
    assert "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE" not in env
    assert env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] == "10"


def test_postgresql_gets_a_worker_per_core_up_to_three(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, expected in ((1, 1), (2, 2), (3, 3), (64, 3)):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        managed = ManagedServer(backend_store_uri=POSTGRES)
        assert managed.processes == expected
        workers = managed.command().index("--workers")
        assert managed.command()[workers + 1] == str(expected)


def test_sqlite_keeps_one_worker_and_a_given_count_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert ManagedServer(backend_store_uri="mlaudit+sqlite:////tmp/x/mlflow.db").processes == 1
    assert ManagedServer(backend_store_uri=POSTGRES, workers=1).processes == 1
    assert ManagedServer(backend_store_uri="sqlite:////tmp/x/mlflow.db", workers=2).processes == 2


def test_gunicorn_serves_by_default_and_uvicorn_on_request() -> None:
    served = ManagedServer(backend_store_uri=POSTGRES).command()
    options = served[served.index("--gunicorn-opts") + 1]
    # Threaded workers: a worker's requests wait on the database side by side.
    assert "--worker-class gthread" in options
    assert "--gunicorn-opts" not in ManagedServer(POSTGRES, http_server="uvicorn").command()


def test_an_unknown_http_server_is_named() -> None:
    with pytest.raises(Exception, match="'hypercorn': expected one of gunicorn, uvicorn"):
        ManagedServer(POSTGRES, http_server="hypercorn").command()
