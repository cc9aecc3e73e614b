"""The ledger's connection: transactions under one lock, database errors as LedgerErrors,
PostgreSQL advisory locks, and the reads every part of the ledger shares."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger import migrations, states
from shadowbill.ledger.errors import (
    LedgerError,
)
from shadowbill.ledger.guard import check_text
from shadowbill.ledger.records import (
    _READ_ONLY,
    _chunks,
    _os_user,
    _reason,
)
from shadowbill.ledger.schema import (
    batch_subscriptions,
    batches,
)
from shadowbill.snapshot.io import mask_password


class LedgerConnection:
    """One ledger behind one SQLAlchemy engine: its lifecycle, transactions and locks."""

    def __init__(self, engine: sa.Engine, *, url: str, actor: str | None = None) -> None:
        """Use ``engine`` (already at the newest schema) and sign audit rows as ``actor``."""
        self._engine = engine
        self._url = mask_password(url)
        self.actor = actor or _os_user()
        check_text(self.actor, "the actor name")
        self._lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The ledger's URL, password masked."""
        return self._url

    @property
    def revision(self) -> str | None:
        """The ledger's schema revision."""
        with self._read() as conn:
            return migrations.current_revision(conn)

    def close(self) -> None:
        """Release the ledger's database connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self._url!r}, actor={self.actor!r})"

    # -- internals ---------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE), under the ledger's lock."""
        with self._lock, self._db_errors(), self._engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A read transaction (SQLite: a deferred BEGIN, readers never block the writer)."""
        with (
            self._lock,
            self._db_errors(),
            self._engine.connect() as conn,
        ):
            conn.execution_options(**{_READ_ONLY: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _db_errors(self) -> Iterator[None]:
        """Database failures as one-line LedgerErrors naming the (masked) ledger URL."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"ledger {self._url}: {_reason(exc)}") from exc

    def _pg_lock(self, conn: sa.Connection, purpose: int, key: str | None = None) -> None:
        """On PostgreSQL, serialize a check-then-insert across processes until commit."""
        if conn.dialect.name != "postgresql":
            return  # SQLite writes are serialized by BEGIN IMMEDIATE
        if key is None:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:ns, :k)"),
                {"ns": migrations.PG_LOCK_NAMESPACE, "k": purpose},
            )
        else:
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:key))"),
                {"k": migrations.PG_LOCK_NAMESPACE + purpose, "key": key},
            )

    def _batch_row(self, conn: sa.Connection, batch_id: str, *, lock: bool = False) -> Any:
        """The batches row of ``batch_id`` (row-locked on request), or LedgerError."""
        stmt = sa.select(batches).where(batches.c.batch_id == batch_id)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        if row is None:
            raise LedgerError(f"no batch {batch_id} in the ledger {self._url}")
        return row

    def _states(self, conn: sa.Connection, batch_id: str, *, lock: bool = False) -> pd.DataFrame:
        """subscription_id, state and customer_fingerprint of every subscription of a batch."""
        s = batch_subscriptions.c
        stmt = sa.select(s.subscription_id, s.state, s.customer_fingerprint).where(
            s.batch_id == batch_id
        )
        if lock:
            stmt = stmt.with_for_update()
        rows = conn.execute(stmt).all()
        return pd.DataFrame(
            rows, columns=["subscription_id", "state", "customer_fingerprint"], dtype=object
        )

    def _live_rows(self, conn: sa.Connection, ids: list[str]) -> pd.DataFrame:
        """The live batch rows (not rolled back) of the given subscriptions, by subscription."""
        s = batch_subscriptions.c
        found: list[Any] = []
        for chunk in _chunks(ids):
            found += conn.execute(
                sa.select(s.subscription_id, s.batch_id, s.state).where(
                    s.subscription_id.in_(chunk), s.state != states.ROLLED_BACK
                )
            ).all()
        frame = pd.DataFrame(found, columns=["subscription_id", "batch_id", "state"], dtype=object)
        return frame.sort_values("subscription_id", ignore_index=True)

    def _next_batch_id(self, conn: sa.Connection, phase: int) -> str:
        """``p{phase}-{n:04d}`` with n one more than the highest of that phase."""
        pattern = re.compile(rf"^p{phase}-(\d+)$")
        used = conn.execute(sa.select(batches.c.batch_id).where(batches.c.phase == phase)).scalars()
        numbers = [int(m[1]) for b in used if (m := pattern.match(b))]
        n = max(numbers, default=0) + 1
        while conn.execute(
            sa.select(batches.c.batch_id).where(batches.c.batch_id == f"p{phase}-{n:04d}")
        ).first():
            n += 1
        return f"p{phase}-{n:04d}"

    def _audit_row(
        self,
        at: dt.datetime,
        action: str,
        batch_id: str | None,
        subscription_id: str | None,
        from_state: str | None,
        to_state: str | None,
        detail_json: str | None,
        fingerprints_json: str | None,
    ) -> dict[str, Any]:
        """One audit_log row signed by this ledger's actor."""
        return {
            "at": at,
            "actor": self.actor,
            "action": action,
            "batch_id": batch_id,
            "subscription_id": subscription_id,
            "from_state": from_state,
            "to_state": to_state,
            "detail_json": detail_json,
            "fingerprints_json": fingerprints_json,
        }
