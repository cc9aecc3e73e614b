"""The ledger's own schema versions: Alembic run programmatically, no alembic.ini needed.

:func:`upgrade` runs every pending revision in one transaction on a connection it gives
Alembic (``config.attributes["connection"]``), holding a lock so that two processes
opening an old ledger at the same time do not both migrate it (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError

from shadowbill.ledger.errors import LedgerError
from shadowbill.ledger.schema import ALEMBIC_DIR, VERSION_TABLE

# Execution option of a read-only connection (SQLite: deferred BEGIN instead of IMMEDIATE).
READ_ONLY_OPTION = "shadowbill_ledger_read"
# pg_advisory_xact_lock namespace of the ledger ("sbl" in ASCII); second key per purpose.
PG_LOCK_NAMESPACE = 0x73626C
PG_LOCK_SCHEMA = 1
_ALEMBIC_LOCK = threading.Lock()


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config for the ledger's revisions, optionally bound to an open connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    """The ledger's revision scripts as shipped with this shadowbill."""
    if not (ALEMBIC_DIR / "env.py").is_file() or not (ALEMBIC_DIR / "versions").is_dir():
        raise LedgerError(
            f"this shadowbill install lacks the ledger's schema revisions ({ALEMBIC_DIR}); "
            "reinstall shadowbill"
        )
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest schema revision this shadowbill knows."""
    head = script_directory().get_current_head()
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The schema revision of the ledger behind ``connection`` (None: no ledger yet)."""
    ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return ctx.get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> str | None:
    """Bring the ledger to ``revision`` (default: head); returns the revision it was at."""
    script = script_directory()
    if revision == "head":
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                at = current_revision(conn)
        if at == script.get_current_head():
            return at  # the usual case: nothing to do, no write lock taken
    # Alembic keeps its running context in module globals: one migration per process at a
    # time; the database lock below keeps other processes out.
    with _ALEMBIC_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                {"ns": PG_LOCK_NAMESPACE, "key": PG_LOCK_SCHEMA},
            )
        before = current_revision(conn)
        if before is not None and before not in {s.revision for s in script.walk_revisions()}:
            raise LedgerError(
                f"the ledger is at schema revision {before}, newer than this shadowbill knows "
                f"(up to {script.get_current_head()}); upgrade shadowbill to open it"
            )
        target = script.get_current_head() if revision == "head" else revision
        if before != target:
            try:
                command.upgrade(alembic_config(conn), revision)
            except CommandError as exc:
                raise LedgerError(f"cannot upgrade the ledger to {revision}: {exc}") from None
    return before


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Take the ledger's schema back to ``revision`` ("base" drops every ledger table)."""
    with _ALEMBIC_LOCK, engine.begin() as conn:
        try:
            command.downgrade(alembic_config(conn), revision)
        except CommandError as exc:
            raise LedgerError(f"cannot downgrade the ledger to {revision}: {exc}") from None
