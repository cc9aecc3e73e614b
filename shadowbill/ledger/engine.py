"""The ledger's database engine: where it is (URL) and how each database is set up for it
(SQLite: WAL, a busy timeout and immediate writes; PostgreSQL: its session settings)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from shadowbill.ledger.errors import (
    LedgerError,
)
from shadowbill.ledger.records import _READ_ONLY
from shadowbill.snapshot.io import mask_password

DEFAULT_URL: Final = "sqlite:///.shadowbill/ledger.db"
URL_ENV: Final = "SHADOWBILL_LEDGER_URL"
SQLITE_BUSY_SECONDS: Final = 60  # how long a SQLite ledger waits for another writer


def default_url() -> str:
    """The ledger URL from ``SHADOWBILL_LEDGER_URL``, else the SQLite file ``.shadowbill/ledger.db``."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def _engine(url: str) -> sa.Engine:
    """An engine for the ledger URL; SQLite gets WAL, a busy timeout and immediate writes."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise LedgerError(f"not a database URL: {mask_password(url)}") from None
    kwargs: dict[str, Any] = {}
    sqlite = parsed.get_backend_name() == "sqlite"
    memory = False
    if sqlite:
        database = parsed.database or ""
        memory = database in ("", ":memory:") or "mode=memory" in database
        if memory:
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            if not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(connect_args={"timeout": SQLITE_BUSY_SECONDS})
    else:
        kwargs.update(pool_pre_ping=True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ImportError, sa.exc.SQLAlchemyError) as exc:
        raise LedgerError(f"cannot open the ledger {mask_password(url)}: {exc}") from None
    if sqlite:
        _sqlite_events(engine, wal=not memory)
    elif engine.dialect.name == "postgresql":
        _postgres_events(engine)
    return engine


def _sqlite_events(engine: sa.Engine, *, wal: bool) -> None:
    """WAL journal, busy timeout and foreign keys on connect; BEGIN IMMEDIATE for writes."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        if wal:
            _enter_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        read = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


def _enter_wal(cur: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting out other connections that hold its write lock.

    Switching a file into WAL takes a read lock and then the write lock inside one step;
    SQLite does not call the busy handler for that upgrade (it could deadlock), so a ledger
    file created by two processes at once would fail one of them with "database is locked".
    """
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    pause = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _postgres_events(engine: sa.Engine) -> None:
    """Plan each statement with its values (prepared statements' generic plans of a chunked
    ``WHERE subscription_id IN (...)`` fall back to scanning the whole table)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET plan_cache_mode = force_custom_plan")
        cur.close()
        dbapi_conn.commit()
