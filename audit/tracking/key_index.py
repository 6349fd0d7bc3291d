"""Indexes that find a run by its idempotency key without reading every run's tags.

Before a keyed run is created the store looks for a run holding the key (a trial's
`mlaudit.trial_key`, an execution's `mlaudit.execution_key`). MLflow's own index on
tags is (key, run_uuid), so that lookup reads the key tag of every run: a 10,000-trial
study would scan up to 10,000 tags per create. Each key gets a partial index on its
tag's value (on PostgreSQL on md5(value): a btree row may not exceed ~2.7 kB, and a
tag value may reach 8,000 characters). The indexes only speed up the lookup; which run
holds a key is decided by the same query as before.
"""

from __future__ import annotations

import logging
from typing import Any

from audit.tracking.runspec import EXECUTION_KEY_TAG, TRIAL_KEY_TAG

_LOG = logging.getLogger(__name__)

# Index name per key tag; the names and tags are constants, never client input.
INDEXES = {TRIAL_KEY_TAG: "mlaudit_tags_trial_key", EXECUTION_KEY_TAG: "mlaudit_tags_execution_key"}


def _statement(dialect: str, tag: str, name: str) -> str:
    column = "md5(value)" if dialect == "postgresql" else "value"
    return f"CREATE INDEX IF NOT EXISTS {name} ON tags ({column}) WHERE key = '{tag}'"


def value_match(dialect: str, tag: str, alias: str = "t", parameter: str = "v") -> str:
    """SQL that matches `alias`'s key tag `tag` to the value bound as `:parameter`, in a
    form each database answers from the partial index (the key written as a literal)."""
    if tag not in INDEXES:
        raise ValueError(f"not an idempotency key tag: {tag}")
    match = f"{alias}.key = '{tag}' AND {alias}.value = :{parameter}"
    if dialect == "postgresql":
        match += f" AND md5({alias}.value) = md5(:{parameter})"
    return match


def ensure_installed(engine: Any) -> None:
    """Create the missing indexes (none when all exist: a role without DDL rights works)."""
    import sqlalchemy

    dialect = engine.dialect.name
    if dialect == "postgresql":
        listed = "SELECT indexname FROM pg_indexes WHERE tablename = 'tags'"
    else:
        listed = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tags'"
    with engine.connect() as connection:
        present = {str(row[0]) for row in connection.execute(sqlalchemy.text(listed))}
    missing = {tag: name for tag, name in INDEXES.items() if name not in present}
    if not missing:
        return
    try:
        with engine.begin() as connection:
            if dialect == "postgresql":  # server workers start together: one at a time
                connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(727370001)"))
            for tag, name in sorted(missing.items()):
                connection.exec_driver_sql(_statement(dialect, tag, name))
    except sqlalchemy.exc.DBAPIError as error:
        # Only speed is lost (a role without DDL rights on an older database): say so.
        _LOG.warning("mlaudit: could not create the run-key indexes on tags: %s", error.orig)
