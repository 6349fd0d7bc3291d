"""The store installs its triggers only when something is missing (no DDL on a normal start)."""

from __future__ import annotations

import sqlalchemy

from audit.tracking import triggers


def _ddl_counter(engine: sqlalchemy.Engine) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith(("CREATE", "DROP")):
            seen.append(statement)

    sqlalchemy.event.listen(engine, "before_cursor_execute", record)
    return seen


def test_a_complete_database_gets_no_ddl_and_a_dropped_trigger_comes_back(tmp_path):
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:  # the MLflow tables the triggers guard
        for table in (
            "runs",
            "params",
            "tags",
            "metrics",
            "latest_metrics",
            "inputs",
            "input_tags",
            "experiments",
            "entity_associations",
            "trace_request_metadata",
            "logged_models",
            "logged_model_params",
            "logged_model_tags",
            "logged_model_metrics",
        ):
            connection.exec_driver_sql(f"CREATE TABLE {table} (run_uuid TEXT, x TEXT)")
    ddl = _ddl_counter(engine)
    triggers.ensure_installed(engine)
    assert ddl, "a fresh database must get the seal table and triggers"
    assert set(triggers.installed_triggers(engine)) == triggers.expected_triggers("sqlite")

    ddl.clear()
    triggers.ensure_installed(engine)
    assert ddl == []

    dropped = sorted(triggers.expected_triggers("sqlite"))[0]
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TRIGGER {dropped}")
    ddl.clear()
    triggers.ensure_installed(engine)
    assert dropped in triggers.installed_triggers(engine)
