"""The ledger's target objects: what each batch created on the target, found again on a rerun."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger import states
from shadowbill.ledger.connection import LedgerConnection
from shadowbill.ledger.errors import (
    DuplicateObjectError,
    LedgerError,
)
from shadowbill.ledger.guard import check_texts
from shadowbill.ledger.records import (
    _PG_LOCK_OBJECT,
    _frame,
    _now,
)
from shadowbill.ledger.schema import (
    target_objects,
)


class ObjectRecords(LedgerConnection):
    """The objects batches created on the target (a part of :class:`~shadowbill.ledger.store.Ledger`)."""

    def record_object(
        self,
        batch_id: str,
        op_key: str,
        kind: str,
        target_id: str,
        idempotency_key: str | None = None,
        subscription_id: str | None = None,
        *,
        customer_id: str | None = None,
    ) -> bool:
        """Record the id of an object a batch created on the target, before moving on.

        Idempotent: the same operation with the same id again returns False and changes
        nothing. The same operation with another id while the first is not deleted (in
        this batch or, for a shared object, any batch) raises DuplicateObjectError.
        Returns True when the object was recorded now. Safe to call from several threads.
        """
        for name, value in (("op_key", op_key), ("kind", kind), ("target_id", target_id)):
            if not isinstance(value, str) or not value:
                raise LedgerError(f"record_object needs a non-empty {name} (batch {batch_id})")
        check_texts(
            (op_key, kind, target_id, idempotency_key, subscription_id, customer_id),
            f"object {op_key} of batch {batch_id}",
        )
        now = _now()
        t = target_objects.c
        with self._write() as conn:
            row = self._batch_row(conn, batch_id)
            if row.status == states.ROLLED_BACK:
                raise LedgerError(
                    f"batch {batch_id} is rolled back; nothing more is created for it "
                    f"(operation {op_key})"
                )
            self._pg_lock(conn, _PG_LOCK_OBJECT, op_key)
            live = conn.execute(
                sa.select(t.batch_id, t.target_id)
                .where(t.op_key == op_key, t.deleted_at.is_(None))
                .order_by(t.created_at)
            ).all()
            mine = [r for r in live if r.batch_id == batch_id]
            if mine and mine[0].target_id == target_id:
                return False
            if mine:
                raise DuplicateObjectError(
                    f"duplicate on target: operation {op_key} of batch {batch_id} created "
                    f"{mine[0].target_id} and now {target_id}; delete one on the target "
                    "before going on"
                )
            others = [r for r in live if r.target_id != target_id]
            if others:
                raise DuplicateObjectError(
                    f"duplicate on target: operation {op_key} was created as "
                    f"{others[0].target_id} by batch {others[0].batch_id} and now as "
                    f"{target_id} by batch {batch_id}; reuse the first one"
                )
            values = {
                "kind": kind,
                "subscription_id": subscription_id,
                "customer_id": customer_id,
                "target_id": target_id,
                "idempotency_key": idempotency_key,
                "created_at": now,
                "deleted_at": None,
            }
            revived = conn.execute(
                target_objects.update()
                .where(t.batch_id == batch_id, t.op_key == op_key)
                .values(**values)
            ).rowcount
            if not revived:
                conn.execute(
                    target_objects.insert().values(batch_id=batch_id, op_key=op_key, **values)
                )
        return True

    def object_id(self, batch_id: str, op_key: str) -> str | None:
        """The target id operation ``op_key`` of the batch created (None: none, or deleted)."""
        t = target_objects.c
        with self._read() as conn:
            return conn.execute(
                sa.select(t.target_id).where(
                    t.batch_id == batch_id, t.op_key == op_key, t.deleted_at.is_(None)
                )
            ).scalar_one_or_none()

    def any_object_id(self, op_key: str) -> str | None:
        """The target id any batch created for ``op_key`` and did not delete (shared catalog objects)."""
        t = target_objects.c
        with self._read() as conn:
            return conn.execute(
                sa.select(t.target_id)
                .where(t.op_key == op_key, t.deleted_at.is_(None))
                .order_by(t.created_at.desc())
                .limit(1)
            ).scalar_one_or_none()

    def object_batches(self, op_key: str) -> list[str]:
        """The batches holding a live record of ``op_key`` (who else uses a shared object)."""
        t = target_objects.c
        with self._read() as conn:
            return list(
                conn.execute(
                    sa.select(t.batch_id)
                    .where(t.op_key == op_key, t.deleted_at.is_(None))
                    .order_by(t.created_at, t.batch_id)
                ).scalars()
            )

    def objects(self, batch_id: str, *, live_only: bool = False) -> pd.DataFrame:
        """The objects a batch created on the target, in creation order."""
        t = target_objects.c
        stmt = (
            sa.select(target_objects).where(t.batch_id == batch_id).order_by(t.created_at, t.op_key)
        )
        if live_only:
            stmt = stmt.where(t.deleted_at.is_(None))
        with self._read() as conn:
            self._batch_row(conn, batch_id)
            return _frame(conn, stmt)

    def mark_deleted(self, batch_id: str, op_key: str) -> None:
        """Record that the object operation ``op_key`` of the batch created is gone from the target.

        Every live record of the same object (shared objects are recorded by several
        batches) is marked; marking a deleted object again changes nothing.
        """
        t = target_objects.c
        now = _now()
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.target_id, t.deleted_at).where(
                    t.batch_id == batch_id, t.op_key == op_key
                )
            ).first()
            if row is None:
                raise LedgerError(f"batch {batch_id} recorded no object for operation {op_key}")
            if row.deleted_at is not None:
                return
            conn.execute(
                target_objects.update()
                .where(t.op_key == op_key, t.target_id == row.target_id, t.deleted_at.is_(None))
                .values(deleted_at=now)
            )
