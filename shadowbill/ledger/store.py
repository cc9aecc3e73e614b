"""The migration ledger: batches, each subscription's state, target objects and an audit log.

Open it with :func:`open_ledger` (any SQLAlchemy URL; a SQLite file by default), which
brings its schema to the newest revision. Every state change is checked against
:mod:`shadowbill.ledger.states` and writes its audit rows in the same transaction;
bulk changes are set-based (chunked ``UPDATE ... WHERE IN`` and ``executemany``).

Concurrency: one :class:`Ledger` may be used from several threads (each call takes the
ledger's lock and a pooled connection); several processes may share one ledger (SQLite
in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` writes; PostgreSQL row locks
and advisory locks where a check must precede an insert).
"""

from __future__ import annotations

import json
from typing import Final

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger import migrations, states
from shadowbill.ledger.batch_records import BatchRecords
from shadowbill.ledger.engine import DEFAULT_URL, SQLITE_BUSY_SECONDS, URL_ENV, _engine, default_url
from shadowbill.ledger.errors import (
    LedgerError,
)
from shadowbill.ledger.lease_records import LeaseRecords
from shadowbill.ledger.object_records import ObjectRecords
from shadowbill.ledger.records import (
    Batch,
    LedgerStatus,
    PlannedFrom,
    _frame,
    _reason,
    _stuck,
)
from shadowbill.ledger.schema import (
    audit_log,
    batch_subscriptions,
    batches,
    target_objects,
)
from shadowbill.ledger.signoff_records import SignoffRecords
from shadowbill.ledger.subscription_records import SubscriptionRecords
from shadowbill.snapshot.io import mask_password

__all__ = [
    "DEFAULT_URL",
    "SQLITE_BUSY_SECONDS",
    "URL_ENV",
    "Batch",
    "Ledger",
    "LedgerStatus",
    "PlannedFrom",
    "default_url",
    "open_ledger",
]


# What a rollback removes (catalog objects are kept on purpose, and objects another live
# batch uses): one of these still live in a rolled-back batch is an orphan.
REMOVED_BY_ROLLBACK: Final = ("customer", "coupon", "subscription", "subscription_schedule")


def open_ledger(url: str | None = None, *, actor: str | None = None) -> Ledger:
    """Open (creating or upgrading to the newest schema) the ledger at ``url``."""
    url = url or default_url()
    engine = _engine(url)
    try:
        migrations.upgrade(engine)
    except LedgerError:
        engine.dispose()
        raise
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise LedgerError(f"cannot open the ledger {mask_password(url)}: {_reason(exc)}") from None
    return Ledger(engine, url=url, actor=actor)


class Ledger(BatchRecords, SubscriptionRecords, ObjectRecords, LeaseRecords, SignoffRecords):
    """The migration ledger behind one SQLAlchemy engine; see :func:`open_ledger`."""

    def status(self) -> LedgerStatus:
        """Every batch with counts per subscription state, and the stuck subscriptions."""
        s, b = batch_subscriptions.c, batches.c
        counts_stmt = sa.select(s.batch_id, s.state, sa.func.count().label("n")).group_by(
            s.batch_id, s.state
        )
        stuck_stmt = (
            sa.select(
                s.batch_id,
                b.status.label("batch_status"),
                s.subscription_id,
                s.customer_id,
                s.state,
                s.error,
                s.updated_at,
            )
            .join(batches, b.batch_id == s.batch_id)
            .where(
                s.state.not_in([states.CUT_OVER, states.ROLLED_BACK]),
                sa.or_(
                    s.state == states.FAILED,
                    b.status.in_([*states.EXPECTED_STATE, states.ROLLED_BACK]),
                ),
            )
            .order_by(s.batch_id, s.subscription_id)
        )
        with self._read() as conn:
            table = _frame(
                conn,
                sa.select(b.batch_id, b.phase, b.status, b.gate_verdict, b.size).order_by(
                    b.created_at, b.batch_id
                ),
            )
            counts = _frame(conn, counts_stmt)
            stuck = _frame(conn, stuck_stmt)
            t = target_objects.c
            other = target_objects.alias("other")
            other_batch = batches.alias("other_batch")
            shared = (
                sa.select(other.c.op_key)
                .join(other_batch, other_batch.c.batch_id == other.c.batch_id)
                .where(
                    other.c.op_key == t.op_key,
                    other.c.deleted_at.is_(None),
                    other_batch.c.status != states.ROLLED_BACK,
                )
                .exists()
            )
            orphans = _frame(
                conn,
                sa.select(t.batch_id, t.op_key, t.kind, t.subscription_id, t.target_id)
                .join(batches, b.batch_id == t.batch_id)
                .where(
                    b.status == states.ROLLED_BACK,
                    t.deleted_at.is_(None),
                    t.kind.in_(REMOVED_BY_ROLLBACK),
                    ~shared,
                )
                .order_by(t.batch_id, t.op_key),
            )
        wide = (
            counts.pivot_table(index="batch_id", columns="state", values="n", aggfunc="sum")
            .reindex(columns=list(states.SUBSCRIPTION_STATES))
            .fillna(0)
            .astype("int64")
        )
        wide.columns.name = None
        table = table.merge(wide, left_on="batch_id", right_index=True, how="left")
        for state in states.SUBSCRIPTION_STATES:
            table[state] = table[state].fillna(0).astype("int64")
        return LedgerStatus(batches=table, stuck=_stuck(stuck), orphans=orphans)

    def log(
        self,
        batch_id: str | None = None,
        limit: int | None = None,
        *,
        subscription_id: str | None = None,
    ) -> pd.DataFrame:
        """The audit log, newest first: who, when, what, from/to state, detail and fingerprints."""
        a = audit_log.c
        stmt = sa.select(audit_log).order_by(a.id.desc())
        if batch_id is not None:
            stmt = stmt.where(a.batch_id == batch_id)
        if subscription_id is not None:
            stmt = stmt.where(a.subscription_id == subscription_id)
        if limit is not None:
            stmt = stmt.limit(int(limit))
        with self._read() as conn:
            frame = _frame(conn, stmt)
        frame["detail"] = [
            json.loads(v) if isinstance(v, str) else None for v in frame["detail_json"]
        ]
        frame["fingerprints"] = [
            json.loads(v) if isinstance(v, str) else None for v in frame["fingerprints_json"]
        ]
        return frame.drop(columns=["detail_json", "fingerprints_json"])
