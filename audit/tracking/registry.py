"""The append-only model registry: versions are never deleted or rewritten, alias moves are kept.

MLflow's SQL registry store with the same allow-list idea as the tracking store:
registering models and versions, tags, descriptions and alias or stage moves are
allowed; deleting or renaming anything is refused. Every alias move and stage
transition is appended to `mlaudit_alias_moves`, a hash chain (each entry's sha256
covers the previous one) that triggers keep append-only, so `verify_moves` can show
that the history is whole and that each alias points where its last move says.

Gated aliases (`champion` unless the server is told otherwise): the registry refuses
to move one to a version that `mlaudit promote` has not vouched for, i.e. a version
without the write-once `mlaudit.promoted_by_bundle` tag or whose run is not sealed.
The check is here, in the store, so the UI, the REST API and every client meet it;
what it cannot know (the bundle itself) `mlaudit promote` checks before it tags.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from mlflow.store.model_registry.sqlalchemy_store import (
    SqlAlchemyStore as SqlRegistryStore,
)

from audit.tracking.promote import DEFAULT_GATED_ALIASES, GATED_ALIASES_ENV, PROMOTED_TAG
from audit.tracking.store import plain_db_uri
from audit.tracking.store_policy import not_offered, policed

MOVES_TABLE = "mlaudit_alias_moves"
MOVES_MESSAGE = "mlaudit: the alias history is append-only"
REGISTRY_MESSAGE = "mlaudit: registered models and versions are never deleted or rewritten"

ALLOWED = frozenset(
    {
        "get_latest_versions",
        "get_model_version",
        "get_model_version_by_alias",
        "get_model_version_download_uri",
        "get_registered_model",
        "search_model_versions",
        "search_registered_models",
        "create_registered_model",
        "create_model_version",
        "set_registered_model_tag",
        "set_model_version_tag",
        "update_registered_model",  # the description only
        "update_model_version",  # the description only
        "set_registered_model_alias",  # appended to the history
        "transition_model_version_stage",  # appended to the history
        "moves",  # ours
        # Reads the server makes around writes (webhook delivery) and the UI's pages.
        "list_webhooks",
        "list_webhooks_by_event",
        "get_webhook",
        "search_prompts",
        "get_prompt",
        "search_prompt_versions",
        "get_prompt_version",
        "get_prompt_version_by_alias",
    }
)
# Said in words when refused (the rest get store_policy's generic sentence).
REFUSED_WORDS = {
    "delete_registered_model": "deleting a registered model",
    "delete_model_version": "deleting a model version",
    "rename_registered_model": "renaming a registered model",
    "delete_registered_model_alias": "deleting an alias (move it to another version instead)",
    "delete_model_version_tag": "deleting a model version tag",
    "delete_registered_model_tag": "deleting a registered model tag",
}

_MOVES_DDL = f"""
CREATE TABLE IF NOT EXISTS {MOVES_TABLE} (
    seq BIGINT NOT NULL PRIMARY KEY,
    name VARCHAR(256) NOT NULL,
    alias VARCHAR(256) NOT NULL,
    version INTEGER NOT NULL,
    run_id VARCHAR(32),
    moved_at BIGINT NOT NULL,
    previous_sha256 CHAR(64) NOT NULL,
    sha256 CHAR(64) NOT NULL
)
"""
_GENESIS = "0" * 64
_SHA256 = re.compile(r"[0-9a-f]{64}")


def gated_aliases() -> frozenset[str]:
    """The aliases only `mlaudit promote` may move (MLAUDIT_GATED_ALIASES, else `champion`)."""
    configured = os.environ.get(GATED_ALIASES_ENV)
    if configured is None:
        return frozenset(DEFAULT_GATED_ALIASES)
    return frozenset(alias.strip() for alias in configured.split(",") if alias.strip())


_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("mlaudit_registry_depth", default=0)


@dataclass(frozen=True)
class Move:
    """One alias move or stage transition (the stage is kept as alias `stage:<Stage>`)."""

    seq: int
    name: str
    alias: str
    version: int
    run_id: str | None
    moved_at: int
    previous_sha256: str
    sha256: str


def move_sha256(
    seq: int, name: str, alias: str, version: int, run_id: str | None, moved_at: int, previous: str
) -> str:
    """sha256 of the JCS text of one move, chained to the previous move's digest."""
    import rfc8785

    document = {
        "seq": seq,
        "name": name,
        "alias": alias,
        "version": version,
        "run_id": run_id,
        "moved_at": moved_at,
        "previous_sha256": previous,
    }
    return hashlib.sha256(bytes(rfc8785.dumps(document))).hexdigest()  # type: ignore[arg-type]


def sqlite_statements() -> list[str]:
    def abort(message: str) -> str:
        return f"BEGIN SELECT RAISE(ABORT, '{message}'); END"

    statements = [_MOVES_DDL]
    for op in ("UPDATE", "DELETE"):
        statements.append(
            f"CREATE TRIGGER IF NOT EXISTS mlaudit_moves_no_{op.lower()} BEFORE {op} "
            f"ON {MOVES_TABLE} {abort(MOVES_MESSAGE)}"
        )
    statements += [
        "CREATE TRIGGER IF NOT EXISTS mlaudit_versions_no_delete BEFORE DELETE ON model_versions "
        + abort(REGISTRY_MESSAGE),
        "CREATE TRIGGER IF NOT EXISTS mlaudit_versions_no_rewrite BEFORE UPDATE OF "
        "name, version, source, run_id ON model_versions " + abort(REGISTRY_MESSAGE),
        "CREATE TRIGGER IF NOT EXISTS mlaudit_models_no_delete BEFORE DELETE ON registered_models "
        + abort(REGISTRY_MESSAGE),
        "CREATE TRIGGER IF NOT EXISTS mlaudit_models_no_rename BEFORE UPDATE OF name "
        "ON registered_models " + abort(REGISTRY_MESSAGE),
    ]
    return statements


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION mlaudit_refuse_registry_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_ARGV[0], ERRCODE = 'integrity_constraint_violation';
END $$ LANGUAGE plpgsql
"""


def postgresql_statements() -> list[str]:
    guarded = [
        ("mlaudit_moves_append_only", MOVES_TABLE, "UPDATE OR DELETE", MOVES_MESSAGE),
        ("mlaudit_versions_no_delete", "model_versions", "DELETE", REGISTRY_MESSAGE),
        (
            "mlaudit_versions_no_rewrite",
            "model_versions",
            "UPDATE OF name, version, source, run_id",
            REGISTRY_MESSAGE,
        ),
        ("mlaudit_models_no_delete", "registered_models", "DELETE", REGISTRY_MESSAGE),
        ("mlaudit_models_no_rename", "registered_models", "UPDATE OF name", REGISTRY_MESSAGE),
    ]
    statements = [_MOVES_DDL, _PG_FUNCTION]
    for name, table, ops, message in guarded:
        statements.append(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        statements.append(
            f"CREATE TRIGGER {name} BEFORE {ops} ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION mlaudit_refuse_registry_change('{message}')"
        )
    return statements


def install(engine: Any) -> None:
    """Create the move history and the registry triggers; idempotent."""
    statements = sqlite_statements() if engine.dialect.name == "sqlite" else postgresql_statements()
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(727370002)"))
        for statement in statements:
            connection.exec_driver_sql(statement)


class AppendOnlyRegistryStore(SqlRegistryStore):
    """MLflow's SQL registry store: nothing deleted or rewritten, alias moves kept."""

    def __init__(
        self,
        store_uri: str | None = None,
        read_db_uri: str | None = None,
        *,
        db_uri: str | None = None,
    ) -> None:
        uri = store_uri if store_uri is not None else db_uri
        if uri is None:
            raise TypeError("AppendOnlyRegistryStore needs a store URI (store_uri or db_uri)")
        super().__init__(plain_db_uri(uri), read_db_uri=None)  # type: ignore[no-untyped-call]
        install(self.engine)

    def __getattribute__(self, name: str) -> Any:
        attribute = object.__getattribute__(self, name)
        if name.startswith("_") or _DEPTH.get() > 0:
            return attribute
        if not callable(getattr(type(self), name, None)) or isinstance(attribute, type):
            return attribute
        if name in ALLOWED:
            return policed(attribute, _DEPTH)
        return _refuser(name)

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        if alias in gated_aliases():
            self._check_vouched_for(name, alias, str(version))
        super().set_registered_model_alias(name, alias, version)  # type: ignore[no-untyped-call]
        self._append_move(name, alias, int(version))

    def set_model_version_tag(self, name: str, version: Any, tag: Any) -> None:
        if tag.key == PROMOTED_TAG:
            existing = self.get_model_version(name, str(version)).tags.get(PROMOTED_TAG)  # type: ignore[no-untyped-call]
            if existing is not None and existing != tag.value:
                from audit.tracking.store_policy import refusal

                raise refusal(
                    f"{name} version {version} was already promoted on bundle sha256 "
                    f"{existing[:16]}...: that record is write-once"
                )
            if not _SHA256.fullmatch(str(tag.value)):
                from audit.tracking.store_policy import refusal

                raise refusal(f"tag {PROMOTED_TAG} must be a bundle's sha256 (64 hex digits)")
        super().set_model_version_tag(name, version, tag)  # type: ignore[no-untyped-call]

    def _check_vouched_for(self, name: str, alias: str, version: str) -> None:
        """Refuse a gated alias move that `mlaudit promote` did not make."""
        from audit.tracking.store_policy import refusal

        model_version = self.get_model_version(name, version)  # type: ignore[no-untyped-call]
        how = "move it with `mlaudit promote`, which checks the study's audit bundle first"
        if PROMOTED_TAG not in model_version.tags:
            raise refusal(
                f"moving alias {alias!r} of {name} to version {version} is refused: "
                f"{alias!r} is gated and this version was never promoted; {how}"
            )
        run_id = model_version.run_id or ""
        if not run_id or not self._is_sealed(run_id):
            raise refusal(
                f"moving alias {alias!r} of {name} to version {version} is refused: "
                f"the version's run ({run_id or 'none'}) is not a sealed run; {how}"
            )

    def _is_sealed(self, run_id: str) -> bool:
        from audit.tracking.triggers import SEALS_TABLE

        with self.ManagedSessionMaker() as session:
            try:
                row = session.execute(
                    sqlalchemy.text(f"SELECT 1 FROM {SEALS_TABLE} WHERE run_id = :r"),  # noqa: S608
                    {"r": run_id},
                ).first()
            except sqlalchemy.exc.OperationalError:
                return False  # no seal table: nothing on this database was ever sealed
        return row is not None

    def transition_model_version_stage(
        self, name: str, version: Any, stage: str, archive_existing_versions: bool
    ) -> Any:
        result = super().transition_model_version_stage(  # type: ignore[no-untyped-call]
            name, version, stage, archive_existing_versions
        )
        self._append_move(name, f"stage:{result.current_stage}", int(version))
        return result

    def _append_move(self, name: str, alias: str, version: int) -> None:
        run_id = self.get_model_version(name, str(version)).run_id or None  # type: ignore[no-untyped-call]
        with self.ManagedSessionMaker() as session:
            if self.engine.dialect.name == "sqlite":
                session.execute(sqlalchemy.text("BEGIN IMMEDIATE"))
            else:
                session.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(727370003)"))
            last = session.execute(
                sqlalchemy.text(
                    f"SELECT seq, sha256 FROM {MOVES_TABLE} ORDER BY seq DESC LIMIT 1"  # noqa: S608
                )
            ).one_or_none()
            seq, previous = (0, _GENESIS) if last is None else (int(last[0]) + 1, str(last[1]))
            moved_at = int(time.time() * 1000)
            digest = move_sha256(seq, name, alias, version, run_id, moved_at, previous)
            session.execute(
                sqlalchemy.text(
                    f"INSERT INTO {MOVES_TABLE} (seq, name, alias, version, run_id, "  # noqa: S608
                    "moved_at, previous_sha256, sha256) VALUES (:s, :n, :a, :v, :r, :t, :p, :h)"
                ),
                {
                    "s": seq,
                    "n": name,
                    "a": alias,
                    "v": version,
                    "r": run_id,
                    "t": moved_at,
                    "p": previous,
                    "h": digest,
                },
            )

    def moves(self) -> list[Move]:
        """The whole move history, in order."""
        with self.ManagedSessionMaker() as session:
            rows = session.execute(
                sqlalchemy.text(
                    "SELECT seq, name, alias, version, run_id, moved_at, previous_sha256, "  # noqa: S608
                    f"sha256 FROM {MOVES_TABLE} ORDER BY seq"
                )
            ).all()
        return [
            Move(int(r[0]), str(r[1]), str(r[2]), int(r[3]), r[4], int(r[5]), str(r[6]), str(r[7]))
            for r in rows
        ]


def verify_moves(moves: list[Move], current: dict[tuple[str, str], int]) -> list[str]:
    """Findings: a broken chain, a gap, or an alias that points elsewhere than its last move.

    `current` maps (registered model, alias) to the version the alias points at now.
    """
    findings: list[str] = []
    previous = _GENESIS
    last: dict[tuple[str, str], int] = {}
    for expected_seq, move in enumerate(moves):
        if move.seq != expected_seq:
            findings.append(f"alias history: move {expected_seq} is missing (found {move.seq})")
        digest = move_sha256(
            move.seq, move.name, move.alias, move.version, move.run_id, move.moved_at, previous
        )
        if move.previous_sha256 != previous or move.sha256 != digest:
            findings.append(f"alias history: move {move.seq} ({move.name}@{move.alias}) changed")
        previous = move.sha256
        last[(move.name, move.alias)] = move.version
    for (name, alias), version in sorted(current.items()):
        if last.get((name, alias)) != version:
            findings.append(
                f"alias {name}@{alias} points at version {version}, but its history says "
                f"{last.get((name, alias))}: it was moved outside the registry"
            )
    return findings


def _refuser(name: str) -> Callable[..., Any]:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        from audit.tracking.store_policy import refusal

        if name in REFUSED_WORDS:
            raise refusal(
                f"{REFUSED_WORDS[name]} is refused: this registry keeps every model, "
                "version and alias move (append-only)"
            )
        raise not_offered(name)

    refuse.__name__ = name
    return refuse
