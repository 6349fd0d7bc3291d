"""The seal table and the SQL triggers that forbid changing sealed data (SQLite and PostgreSQL).

Defence in depth under the store's own checks: even a client that writes to the
database directly cannot UPDATE or DELETE a seal, nor INSERT, UPDATE or DELETE the
rows of a sealed run (runs, params, tags, metrics, latest_metrics, dataset inputs,
the logged models it produced with their params, tags and metrics, and its links to
traces).
A database superuser can still drop these triggers; only an external checkpoint
(`mlaudit track checkpoint`, kept outside the server) exposes a rewrite after that.
"""

from __future__ import annotations

import re
from typing import Any

SEALS_TABLE = "mlaudit_seals"
SEALED_MESSAGE = "mlaudit: run is sealed; its recorded data can no longer change"
SEAL_TABLE_MESSAGE = "mlaudit: seals are append-only"

# Tables whose rows belong to one run, by the column naming the run.
RUN_CHILD_TABLES = ("params", "tags", "metrics", "latest_metrics")
# Tables whose rows belong to one logged model (by model_id); sealed with its source run.
MODEL_CHILD_TABLES = ("logged_model_params", "logged_model_tags", "logged_model_metrics")
# The registry's back-reference on a logged model (which versions were registered from
# it): written when a version is registered, usually after the run is sealed, and kept
# out of the record (see record.MODEL_REGISTRY_TAG).
REGISTRY_BACKREF_TAG = "mlflow.modelVersions"
# Rows that tie something to a run only when a column has a given value:
# (table, run column, filter column, filter value).
FILTERED_RUN_TABLES = (
    ("inputs", "destination_id", "destination_type", "RUN"),
    ("entity_associations", "destination_id", "destination_type", "run"),
    ("trace_request_metadata", "value", "key", "mlflow.sourceRun"),
)

_SEALS_DDL = f"""
CREATE TABLE IF NOT EXISTS {SEALS_TABLE} (
    experiment_id VARCHAR(32) NOT NULL,
    seq BIGINT NOT NULL,
    run_id VARCHAR(32) NOT NULL UNIQUE,
    sha256 CHAR(64) NOT NULL,
    sealed_at BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, seq)
)
"""


def _sealed(ref: str) -> str:
    return f"EXISTS (SELECT 1 FROM {SEALS_TABLE} WHERE run_id = {ref})"  # noqa: S608 (constant)


def _model_sealed(ref: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {SEALS_TABLE} s JOIN logged_models m "  # noqa: S608 (constant)
        f"ON s.run_id = m.source_run_id WHERE m.model_id = {ref})"
    )


def sqlite_statements() -> list[str]:
    """DDL for SQLite: the seal table and BEFORE triggers that abort the statement."""
    abort = f"BEGIN SELECT RAISE(ABORT, '{SEALED_MESSAGE}'); END"
    statements = [_SEALS_DDL]
    for op in ("UPDATE", "DELETE"):
        statements.append(
            f"CREATE TRIGGER IF NOT EXISTS mlaudit_seals_no_{op.lower()} BEFORE {op} "
            f"ON {SEALS_TABLE} BEGIN SELECT RAISE(ABORT, '{SEAL_TABLE_MESSAGE}'); END"
        )
    for table in (*RUN_CHILD_TABLES, "runs"):
        conditions = {
            "INSERT": _sealed("NEW.run_uuid"),
            "UPDATE": f"{_sealed('OLD.run_uuid')} OR {_sealed('NEW.run_uuid')}",
            "DELETE": _sealed("OLD.run_uuid"),
        }
        for op, condition in conditions.items():
            if table == "runs" and op == "INSERT":
                continue  # a new run cannot be sealed yet
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS mlaudit_{table}_sealed_{op.lower()} "
                f"BEFORE {op} ON {table} WHEN {condition} {abort}"
            )
    for table, column, key_column, key in FILTERED_RUN_TABLES:
        conditions = {
            op: f"{row}.{key_column} = '{key}' AND {_sealed(f'{row}.{column}')}"
            for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
        }
        conditions["UPDATE"] += f" OR NEW.{key_column} = '{key}' AND {_sealed(f'NEW.{column}')}"
        for op, condition in conditions.items():
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS mlaudit_{table}_sealed_{op.lower()} "
                f"BEFORE {op} ON {table} WHEN {condition} {abort}"
            )
    model_conditions = {
        "INSERT": _sealed("NEW.source_run_id"),
        "UPDATE": f"{_sealed('OLD.source_run_id')} OR {_sealed('NEW.source_run_id')}",
        "DELETE": _sealed("OLD.source_run_id"),
    }
    for op, condition in model_conditions.items():
        statements.append(
            f"CREATE TRIGGER IF NOT EXISTS mlaudit_logged_models_sealed_{op.lower()} "
            f"BEFORE {op} ON logged_models WHEN {condition} {abort}"
        )
    for table in MODEL_CHILD_TABLES:
        for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD")):
            condition = _model_sealed(f"{row}.model_id")
            if op == "UPDATE":
                condition += f" OR {_model_sealed('NEW.model_id')}"
            if table == "logged_model_tags":
                keys = ("NEW", "OLD") if op == "UPDATE" else (row,)
                exempt = " AND ".join(f"{k}.tag_key = '{REGISTRY_BACKREF_TAG}'" for k in keys)
                condition = f"NOT ({exempt}) AND ({condition})"
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS mlaudit_{table}_sealed_{op.lower()} "
                f"BEFORE {op} ON {table} WHEN {condition} {abort}"
            )
    return statements


# PostgreSQL: the child-row trigger first takes a share lock on the run row, so it
# waits for a sealing transaction (which holds FOR UPDATE on that row) and then sees
# its seal; under READ COMMITTED each statement in the function gets a new snapshot.
_PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION mlaudit_refuse_seal_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '@SEAL_TABLE_MESSAGE@' USING ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql;
@SPLIT@
CREATE OR REPLACE FUNCTION mlaudit_guard_sealed_run() RETURNS trigger AS $$
DECLARE
    column_name text := TG_ARGV[0];
    key_column text := TG_ARGV[1];
    key_value text := TG_ARGV[2];
    rid text;
    rids text[] := ARRAY[]::text[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF key_column = '' OR to_jsonb(OLD) ->> key_column = key_value THEN
            rids := rids || (to_jsonb(OLD) ->> column_name);
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        IF key_column = '' OR to_jsonb(NEW) ->> key_column = key_value THEN
            rids := rids || (to_jsonb(NEW) ->> column_name);
        END IF;
    END IF;
    IF TG_TABLE_NAME = 'logged_model_tags'
        AND (TG_OP = 'INSERT' OR to_jsonb(OLD) ->> 'tag_key' = '@BACKREF@')
        AND (TG_OP = 'DELETE' OR to_jsonb(NEW) ->> 'tag_key' = '@BACKREF@') THEN
        -- the registry back-reference, outside the record
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME IN ('logged_model_params', 'logged_model_tags', 'logged_model_metrics') THEN
        -- a model's rows are sealed with the run that produced it
        rids := ARRAY(SELECT m.source_run_id FROM logged_models m
                      WHERE m.model_id = ANY(rids) AND m.source_run_id IS NOT NULL);
    END IF;
    FOREACH rid IN ARRAY rids LOOP
        IF TG_TABLE_NAME <> 'runs' THEN
            PERFORM 1 FROM runs WHERE run_uuid = rid FOR SHARE;
        END IF;
        IF EXISTS (SELECT 1 FROM @SEALS_TABLE@ WHERE run_id = rid) THEN
            RAISE EXCEPTION USING MESSAGE = '@SEALED_MESSAGE@ (run ' || rid || ')',
                ERRCODE = 'integrity_constraint_violation';
        END IF;
    END LOOP;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""
_PG_FUNCTIONS = (
    _PG_FUNCTIONS.replace("@SEAL_TABLE_MESSAGE@", SEAL_TABLE_MESSAGE)
    .replace("@SEALED_MESSAGE@", SEALED_MESSAGE)
    .replace("@SEALS_TABLE@", SEALS_TABLE)
    .replace("@BACKREF@", REGISTRY_BACKREF_TAG)
)


def postgresql_statements() -> list[str]:
    """DDL for PostgreSQL: the seal table, two trigger functions and their triggers."""
    # One statement per entry: psycopg 3 runs a single statement per execute.
    statements = [_SEALS_DDL, *_PG_FUNCTIONS.split("@SPLIT@")]
    statements.append(f"DROP TRIGGER IF EXISTS mlaudit_seals_append_only ON {SEALS_TABLE}")
    statements.append(
        f"CREATE TRIGGER mlaudit_seals_append_only BEFORE UPDATE OR DELETE ON {SEALS_TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION mlaudit_refuse_seal_change()"
    )
    every = "INSERT OR UPDATE OR DELETE"
    guarded = [(t, "run_uuid", every, "", "") for t in RUN_CHILD_TABLES]
    guarded += [("runs", "run_uuid", "UPDATE OR DELETE", "", "")]
    guarded += [(t, c, every, kc, kv) for t, c, kc, kv in FILTERED_RUN_TABLES]
    guarded += [("logged_models", "source_run_id", every, "", "")]
    guarded += [(t, "model_id", every, "", "") for t in MODEL_CHILD_TABLES]
    for table, column, ops, key_column, key_value in guarded:
        name = f"mlaudit_{table}_sealed"
        statements.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        statements.append(
            f"CREATE TRIGGER {name} BEFORE {ops} ON {table} FOR EACH ROW EXECUTE FUNCTION "
            f"mlaudit_guard_sealed_run('{column}', '{key_column}', '{key_value}')"
        )
    return statements


def statements_for(dialect: str) -> list[str]:
    """The DDL for a SQLAlchemy dialect name ("sqlite" or "postgresql")."""
    if dialect == "sqlite":
        return sqlite_statements()
    if dialect == "postgresql":
        return postgresql_statements()
    raise ValueError(f"mlaudit supports sqlite and postgresql, not {dialect}")


def install(engine: Any) -> None:
    """Create the seal table and (re)install the triggers; idempotent."""
    import sqlalchemy

    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Serialise concurrent installers (several server workers start at once).
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(727370001)"))
        for statement in statements_for(engine.dialect.name):
            connection.exec_driver_sql(statement)


def expected_triggers(dialect: str) -> set[str]:
    """Names of the triggers `install` creates for a dialect."""
    return {
        name
        for statement in statements_for(dialect)
        for name in re.findall(
            r"CREATE (?:OR REPLACE )?TRIGGER (?:IF NOT EXISTS )?(\w+)", statement
        )
    }


def ensure_installed(engine: Any) -> None:
    """Install only what is missing, so a server may run as a role without DDL rights.

    A dropped trigger is still put back at the next start (by a role that may).
    """
    import sqlalchemy

    present = set(installed_triggers(engine))
    if present >= expected_triggers(engine.dialect.name) and sqlalchemy.inspect(engine).has_table(
        "mlaudit_seals"
    ):
        return
    install(engine)


def installed_triggers(engine: Any) -> list[str]:
    """Names of the mlaudit triggers present in the database (for checks and tests)."""
    import sqlalchemy

    if engine.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'mlaudit_%'"
    else:
        query = (
            "SELECT DISTINCT trigger_name FROM information_schema.triggers "
            "WHERE trigger_name LIKE 'mlaudit_%'"
        )
    with engine.connect() as connection:
        return sorted(str(row[0]) for row in connection.execute(sqlalchemy.text(query)))
