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

import datetime as dt
import getpass
import json
import operator
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from shadowbill.ledger import migrations, states
from shadowbill.ledger.errors import (
    DuplicateObjectError,
    LedgerError,
    SubscriptionTakenError,
    TransitionError,
)
from shadowbill.ledger.guard import check_text, check_texts, safe_json
from shadowbill.ledger.schema import (
    BATCH_ID,
    ID,
    audit_log,
    batch_subscriptions,
    batches,
    target_objects,
)
from shadowbill.snapshot.io import mask_password

DEFAULT_URL: Final = "sqlite:///.shadowbill/ledger.db"
URL_ENV: Final = "SHADOWBILL_LEDGER_URL"
CHUNK: Final = 500  # ids per IN (...) list: well under every database's bind limit
SHOW: Final = 5  # ids named in an error message
_READ_ONLY: Final = migrations.READ_ONLY_OPTION
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
_PG_LOCK_PLAN: Final = 2
_PG_LOCK_OBJECT: Final = 3
SQLITE_BUSY_SECONDS: Final = 60  # how long a SQLite ledger waits for another writer
PLAN_COLUMNS: Final = (
    "subscription_id",
    "customer_id",
    "customer_fingerprint",
    "paid_through",
    "first_target_period_start",
)
TARGET_COLUMNS: Final = (
    "target_subscription_id",
    "target_customer_id",
    "paid_through",
    "first_target_period_start",
)
_TIME_COLUMNS: Final = frozenset(
    {
        "created_at",
        "updated_at",
        "gate_at",
        "paid_through",
        "first_target_period_start",
        "deleted_at",
        "at",
    }
)
_BATCH_COLUMNS: Final = (
    "batch_id",
    "phase",
    "status",
    "size",
    "created_at",
    "created_by",
    "updated_at",
    "rollout_fingerprint",
    "snapshot_fingerprint",
    "gate_verdict",
    "gate_forced_reason",
    "gate_at",
)


@dataclass(frozen=True)
class Batch:
    """One batch as the ledger records it."""

    batch_id: str
    phase: int
    status: str
    size: int
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    fingerprints: dict[str, str]
    rollout_fingerprint: str | None = None
    snapshot_fingerprint: str | None = None
    gate_verdict: str | None = None
    gate_forced_reason: str | None = None
    gate_at: dt.datetime | None = None

    @property
    def gate_open(self) -> bool:
        """True when the batch may be applied: its gate passed, or failed and was forced."""
        return self.gate_verdict == "pass" or (
            self.gate_verdict == "fail" and bool(self.gate_forced_reason)
        )


@dataclass(frozen=True)
class LedgerStatus:
    """Every batch with its count of subscriptions per state, and what is stuck.

    ``batches``: batch_id, phase, status, gate_verdict, size, then one count column per
    subscription state. ``stuck``: batch_id, batch_status, subscription_id, customer_id,
    state, reason, error, updated_at — subscriptions that failed, or are behind their
    batch's status (e.g. applied in a verified batch, not rolled back in a rolled-back one).
    """

    batches: pd.DataFrame
    stuck: pd.DataFrame = field(repr=False)

    @property
    def ok(self) -> bool:
        """True when nothing is stuck."""
        return self.stuck.empty

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (timestamps as ISO-8601 strings)."""
        return {
            "batches": json.loads(self.batches.to_json(orient="records", date_format="iso")),
            "stuck": json.loads(self.stuck.to_json(orient="records", date_format="iso")),
        }


def default_url() -> str:
    """The ledger URL from ``SHADOWBILL_LEDGER_URL``, else the SQLite file ``.shadowbill/ledger.db``."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


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


class Ledger:
    """The migration ledger behind one SQLAlchemy engine; see :func:`open_ledger`."""

    def __init__(self, engine: sa.Engine, *, url: str, actor: str | None = None) -> None:
        """Use ``engine`` (already at the newest schema) and sign audit rows as ``actor``."""
        self._engine = engine
        self._url = mask_password(url)
        self.actor = actor or _os_user()
        check_text(self.actor, "the actor name")
        self._lock = threading.RLock()

    # -- lifecycle -----------------------------------------------------------------------

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

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self._url!r}, actor={self.actor!r})"

    # -- batches -------------------------------------------------------------------------

    def create_batch(
        self,
        phase: int,
        subscriptions: pd.DataFrame,
        fingerprints: Mapping[str, str],
        *,
        batch_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a planned batch of subscriptions; refuses ones still in a live batch.

        ``subscriptions`` has subscription_id and customer_id, and optionally
        customer_fingerprint, paid_through and first_target_period_start (naive
        timestamps are UTC). ``fingerprints`` names the plan's inputs (``rollout`` and
        ``snapshot`` fill the batch's columns of those names). The id is
        ``p{phase}-{n:04d}`` with the next n of that phase unless ``batch_id`` is given.
        """
        phase = _phase(phase)
        plan = _plan_rows(subscriptions)
        fps = {str(k): str(v) for k, v in fingerprints.items()}
        fps_json = safe_json(fps, "the batch fingerprints")
        detail_json = safe_json({"size": len(plan), **(detail or {})}, "the plan detail")
        if batch_id is not None:
            _check_batch_id(batch_id)
        now = _now()
        with self._write() as conn:
            self._pg_lock(conn, _PG_LOCK_PLAN)
            taken = self._live_rows(conn, plan["subscription_id"].tolist())
            if not taken.empty:
                shown = ", ".join(
                    f"{r.subscription_id} ({r.batch_id}, {r.state})"
                    for r in taken.head(SHOW).itertuples()
                )
                raise SubscriptionTakenError(
                    f"{len(taken)} subscription(s) already in a live batch: {shown}; "
                    "leave them out of the plan or roll that batch back first"
                )
            new_id = batch_id or self._next_batch_id(conn, phase)
            if conn.execute(
                sa.select(batches.c.batch_id).where(batches.c.batch_id == new_id)
            ).first():
                raise LedgerError(f"batch {new_id} already exists; choose another batch id")
            conn.execute(
                batches.insert().values(
                    batch_id=new_id,
                    phase=phase,
                    created_at=now,
                    created_by=self.actor,
                    rollout_fingerprint=fps.get("rollout"),
                    snapshot_fingerprint=fps.get("snapshot"),
                    inputs_json=fps_json,
                    size=len(plan),
                    status=states.PLANNED,
                    updated_at=now,
                )
            )
            rows = _records(plan)
            for row in rows:
                row.update(batch_id=new_id, state=states.PLANNED, updated_at=now)
            conn.execute(batch_subscriptions.insert(), rows)
            audit = [
                self._audit_row(
                    now, "plan", new_id, None, None, states.PLANNED, detail_json, fps_json
                )
            ]
            audit += [
                self._audit_row(
                    now,
                    "plan",
                    new_id,
                    row["subscription_id"],
                    None,
                    states.PLANNED,
                    None,
                    _customer_fp(row["customer_fingerprint"]),
                )
                for row in rows
            ]
            conn.execute(audit_log.insert(), audit)
        return new_id

    def next_batch_id(self, phase: int) -> str:
        """The id create_batch would give the phase's next batch now (not reserved)."""
        phase = _phase(phase)
        with self._read() as conn:
            return self._next_batch_id(conn, phase)

    def batch(self, batch_id: str) -> Batch:
        """The batch ``batch_id`` (raises LedgerError when there is none)."""
        with self._read() as conn:
            row = self._batch_row(conn, batch_id)
        return _batch_from_row(row)

    def batches(self, phase: int | None = None) -> pd.DataFrame:
        """Every batch (optionally of one phase), oldest first."""
        stmt = sa.select(*(batches.c[c] for c in _BATCH_COLUMNS)).order_by(
            batches.c.created_at, batches.c.batch_id
        )
        if phase is not None:
            stmt = stmt.where(batches.c.phase == _phase(phase))
        with self._read() as conn:
            return _frame(conn, stmt)

    def set_batch_status(
        self, batch_id: str, status: str, *, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Move a batch to ``status`` as the batch transition table allows; one audit row."""
        if status not in states.BATCH_STATUSES:
            raise LedgerError(
                f"unknown batch status {status!r}; one of {', '.join(states.BATCH_STATUSES)}"
            )
        detail_json = safe_json(dict(detail) if detail else None, "the status detail")
        now = _now()
        with self._write() as conn:
            row = self._batch_row(conn, batch_id, lock=True)
            old = row.status
            if status == states.APPLYING and not _batch_from_row(row).gate_open:
                verdict = row.gate_verdict or "not gated"
                raise TransitionError(
                    f"batch {batch_id} cannot be applied: its gate has not passed ({verdict}); "
                    "gate it again, or force it with a reason"
                )
            if not states.batch_allowed(old, status):
                raise TransitionError(_batch_refusal(batch_id, old, status))
            if status == states.ROLLED_BACK:
                cut = conn.execute(
                    sa.select(batch_subscriptions.c.subscription_id)
                    .where(
                        batch_subscriptions.c.batch_id == batch_id,
                        batch_subscriptions.c.state == states.CUT_OVER,
                    )
                    .order_by(batch_subscriptions.c.subscription_id)
                ).scalars()
                cut_ids = list(cut)
                if cut_ids:
                    raise TransitionError(
                        f"batch {batch_id} cannot be rolled back: {len(cut_ids)} subscription(s) "
                        f"are cut over ({', '.join(cut_ids[:SHOW])}) and the target bills them now"
                    )
            conn.execute(
                batches.update()
                .where(batches.c.batch_id == batch_id)
                .values(status=status, updated_at=now)
            )
            conn.execute(
                audit_log.insert(),
                [
                    self._audit_row(
                        now,
                        states.ACTIONS[status],
                        batch_id,
                        None,
                        old,
                        status,
                        detail_json,
                        row.inputs_json,
                    )
                ],
            )

    def record_gate(
        self,
        batch_id: str,
        verdict: str,
        *,
        forced_reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a batch's gate verdict (pass or fail, optionally forced with a reason)."""
        if verdict not in states.GATE_VERDICTS:
            raise LedgerError(f"unknown gate verdict {verdict!r}; pass or fail")
        if forced_reason is not None:
            forced_reason = forced_reason.strip()
            if not forced_reason:
                raise LedgerError(f"forcing the gate of batch {batch_id} needs a reason")
            check_text(forced_reason, "the forced-gate reason")
        detail_json = safe_json(
            {"verdict": verdict, "forced_reason": forced_reason, **(detail or {})},
            "the gate detail",
        )
        now = _now()
        with self._write() as conn:
            row = self._batch_row(conn, batch_id, lock=True)
            if row.status not in states.GATEABLE:
                raise TransitionError(
                    f"batch {batch_id} is {row.status}: a gate is recorded before apply "
                    f"(batch {', '.join(sorted(states.GATEABLE))})"
                )
            conn.execute(
                batches.update()
                .where(batches.c.batch_id == batch_id)
                .values(
                    status=states.GATED,
                    gate_verdict=verdict,
                    gate_forced_reason=forced_reason,
                    gate_at=now,
                    updated_at=now,
                )
            )
            action = "force" if forced_reason and verdict == "fail" else "gate"
            conn.execute(
                audit_log.insert(),
                [
                    self._audit_row(
                        now,
                        action,
                        batch_id,
                        None,
                        row.status,
                        states.GATED,
                        detail_json,
                        row.inputs_json,
                    )
                ],
            )

    # -- subscriptions -------------------------------------------------------------------

    def subscriptions(self, batch_id: str, *, state: str | None = None) -> pd.DataFrame:
        """The subscriptions of a batch with their states and target ids, by subscription id."""
        stmt = (
            sa.select(batch_subscriptions)
            .where(batch_subscriptions.c.batch_id == batch_id)
            .order_by(batch_subscriptions.c.subscription_id)
        )
        if state is not None:
            _check_state(state)
            stmt = stmt.where(batch_subscriptions.c.state == state)
        with self._read() as conn:
            self._batch_row(conn, batch_id)
            return _frame(conn, stmt)

    def taken_subscriptions(self) -> set[str]:
        """Subscriptions in a batch and not rolled back: planning leaves them out."""
        stmt = (
            sa.select(batch_subscriptions.c.subscription_id)
            .where(batch_subscriptions.c.state != states.ROLLED_BACK)
            .distinct()
        )
        with self._read() as conn:
            return set(conn.execute(stmt).scalars())

    def transition(
        self,
        batch_id: str,
        subscription_ids: Sequence[str] | pd.Series,
        to_state: str,
        *,
        detail: Mapping[str, Any] | None = None,
        error: str | Mapping[str, str] | None = None,
        fingerprints: Mapping[str, str] | None = None,
        skip_already: bool = False,
    ) -> int:
        """Move subscriptions of a batch to ``to_state``; one audit row each, one transaction.

        All or nothing: if any subscription may not move (see ``states.TRANSITIONS``) a
        TransitionError names it, its state and ``to_state``, and nothing changes.
        ``error`` (one text, or one per subscription id) is stored on the subscriptions;
        ``None`` clears it. With ``skip_already``, subscriptions already in ``to_state``
        are left alone (a resumed step). Returns how many subscriptions moved.
        """
        _check_state(to_state)
        ids = pd.unique(pd.Series(list(subscription_ids), dtype=object).astype(str))
        if len(ids) == 0:
            return 0
        detail_json = safe_json(dict(detail) if detail else None, "the transition detail")
        extra_fps = {str(k): str(v) for k, v in (fingerprints or {}).items()}
        safe_json(extra_fps, "the transition fingerprints")
        if isinstance(error, Mapping):
            check_texts(error.values(), "the error text")
        elif error is not None:
            check_text(error, "the error text")
        now = _now()
        with self._write() as conn:
            self._batch_row(conn, batch_id)
            current = self._states(conn, batch_id, lock=True)
            asked = pd.DataFrame({"subscription_id": ids})
            rows = asked.merge(current, on="subscription_id", how="left")
            missing = rows.loc[rows["state"].isna(), "subscription_id"].tolist()
            if missing:
                raise TransitionError(
                    f"{len(missing)} subscription(s) are not in batch {batch_id}: "
                    f"{', '.join(missing[:SHOW])}"
                )
            if skip_already:
                rows = rows[rows["state"] != to_state]
                if rows.empty:
                    return 0
            bad = rows[~rows["state"].isin(states.sources(to_state))]
            if not bad.empty:
                raise TransitionError(_refusal(batch_id, bad, to_state))
            if isinstance(error, Mapping):
                errors: list[str | None] = [error.get(s) for s in rows["subscription_id"]]
            else:
                errors = [error] * len(rows)
            moved = rows["subscription_id"].tolist()
            if isinstance(error, Mapping):
                conn.execute(
                    batch_subscriptions.update()
                    .where(
                        batch_subscriptions.c.batch_id == batch_id,
                        batch_subscriptions.c.subscription_id == sa.bindparam("sid"),
                    )
                    .values(state=to_state, error=sa.bindparam("err"), updated_at=now),
                    [{"sid": s, "err": e} for s, e in zip(moved, errors, strict=True)],
                )
            else:
                for chunk in _chunks(moved):
                    conn.execute(
                        batch_subscriptions.update()
                        .where(
                            batch_subscriptions.c.batch_id == batch_id,
                            batch_subscriptions.c.subscription_id.in_(chunk),
                        )
                        .values(state=to_state, error=error, updated_at=now)
                    )
            action = states.ACTIONS[to_state]
            audit = []
            for sid, from_state, fp, err in zip(
                moved, rows["state"], rows["customer_fingerprint"], errors, strict=True
            ):
                row_detail = detail_json
                if err is not None:
                    row_detail = safe_json({**(detail or {}), "error": err}, "the error text")
                audit.append(
                    self._audit_row(
                        now,
                        action,
                        batch_id,
                        sid,
                        from_state,
                        to_state,
                        row_detail,
                        _customer_fp(fp, extra_fps),
                    )
                )
            conn.execute(audit_log.insert(), audit)
        return len(moved)

    def set_targets(self, batch_id: str, frame: pd.DataFrame) -> int:
        """Record target ids (and paid-through / first target period) of a batch's subscriptions.

        ``frame`` has subscription_id and any of target_subscription_id,
        target_customer_id, paid_through, first_target_period_start; a missing value
        keeps what the ledger has. Returns how many subscriptions were updated.
        """
        if "subscription_id" not in frame.columns:
            raise LedgerError("set_targets needs a subscription_id column")
        cols = [c for c in TARGET_COLUMNS if c in frame.columns]
        if not cols:
            raise LedgerError(f"set_targets needs one of the columns {', '.join(TARGET_COLUMNS)}")
        if frame.empty:
            return 0
        data = frame[["subscription_id", *cols]].copy()
        data["subscription_id"] = _ids(data["subscription_id"], "subscription_id")
        if data["subscription_id"].duplicated().any():
            dup = data.loc[data["subscription_id"].duplicated(), "subscription_id"].iloc[0]
            raise LedgerError(f"set_targets got subscription {dup} more than once")
        for c in cols:
            if c in _TIME_COLUMNS:
                data[c] = _utc(data[c], c)
            else:
                check_texts(data[c].dropna(), f"the column {c}")
        rows = [{f"new_{k}": v for k, v in r.items()} for r in _records(data)]
        assignments = {
            c: sa.func.coalesce(
                sa.bindparam(f"new_{c}", type_=batch_subscriptions.c[c].type),
                batch_subscriptions.c[c],
            )
            for c in cols
        }
        now = _now()
        with self._write() as conn:
            self._batch_row(conn, batch_id)
            current = self._states(conn, batch_id)
            unknown = sorted(set(data["subscription_id"]) - set(current["subscription_id"]))
            if unknown:
                raise LedgerError(
                    f"{len(unknown)} subscription(s) are not in batch {batch_id}: "
                    f"{', '.join(unknown[:SHOW])}"
                )
            conn.execute(
                batch_subscriptions.update()
                .where(
                    batch_subscriptions.c.batch_id == batch_id,
                    batch_subscriptions.c.subscription_id == sa.bindparam("new_subscription_id"),
                )
                .values(updated_at=now, **assignments),
                rows,
            )
            conn.execute(
                audit_log.insert(),
                [
                    self._audit_row(
                        now,
                        "targets",
                        batch_id,
                        None,
                        None,
                        None,
                        safe_json({"subscriptions": len(rows), "columns": cols}, "detail"),
                        None,
                    )
                ],
            )
        return len(rows)

    # -- target objects ------------------------------------------------------------------

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

    # -- status and log ------------------------------------------------------------------

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
        return LedgerStatus(batches=table, stuck=_stuck(stuck))

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

    # -- internals -----------------------------------------------------------------------

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


# -- helpers -------------------------------------------------------------------------------


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


def _os_user() -> str:
    """The operating-system user running shadowbill (the default audit actor)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.UTC)


def _reason(exc: BaseException) -> str:
    """The first line of a database error, passwords masked."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return mask_password(text[0] if text else type(orig).__name__)


def _phase(phase: int) -> int:
    """A phase number (a positive integer)."""
    try:
        value = operator.index(phase)
    except TypeError:
        value = 0
    if isinstance(phase, bool) or value < 1:
        raise LedgerError(f"phase must be a positive integer, got {phase!r}")
    return value


def _check_batch_id(batch_id: str) -> None:
    """Refuse a batch id that is empty, too long or not plain text."""
    if not isinstance(batch_id, str) or len(batch_id) > BATCH_ID or not _BATCH_ID.match(batch_id):
        raise LedgerError(
            f"batch id {batch_id!r} must be 1-{BATCH_ID} letters, digits, '.', '_', ':' or '-'"
        )


def _check_state(state: str) -> None:
    """Refuse a subscription state that is not in the transition table."""
    if state not in states.SUBSCRIPTION_STATES:
        raise TransitionError(
            f"unknown subscription state {state!r}; one of {', '.join(states.SUBSCRIPTION_STATES)}"
        )


def _ids(values: pd.Series, column: str) -> pd.Series:
    """A column of ids as text; refuses missing or empty ids and over-long ones."""
    if values.isna().any():
        raise LedgerError(f"column {column} has {int(values.isna().sum())} missing id(s)")
    text = values.astype(str)
    if (text.str.len() == 0).any() or (text.str.len() > ID).any():
        bad = text[(text.str.len() == 0) | (text.str.len() > ID)].iloc[0]
        raise LedgerError(f"column {column} has an empty or over-long id ({bad[:40]!r})")
    return text.astype(object)


def _utc(values: pd.Series, column: str) -> pd.Series:
    """A column of timestamps as UTC (naive values are UTC); missing stays None."""
    try:
        if pd.api.types.is_string_dtype(values) or values.dtype == object:
            stamps = pd.to_datetime(values, utc=True, format="ISO8601")
        else:
            stamps = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise LedgerError(f"column {column} holds a value that is not a timestamp: {exc}") from None
    return stamps.astype(object).where(stamps.notna(), None)


def _plan_rows(subscriptions: pd.DataFrame) -> pd.DataFrame:
    """The plan columns of a batch's subscriptions, checked and normalized."""
    if not isinstance(subscriptions, pd.DataFrame):
        raise LedgerError("a batch's subscriptions must be a DataFrame")
    missing = [c for c in PLAN_COLUMNS[:2] if c not in subscriptions.columns]
    if missing:
        raise LedgerError(f"a batch's subscriptions lack the column(s) {', '.join(missing)}")
    if subscriptions.empty:
        raise LedgerError("a batch needs at least one subscription")
    plan = pd.DataFrame(index=range(len(subscriptions)))
    plan["subscription_id"] = _ids(
        subscriptions["subscription_id"].reset_index(drop=True), "subscription_id"
    )
    plan["customer_id"] = _ids(subscriptions["customer_id"].reset_index(drop=True), "customer_id")
    dup = plan["subscription_id"].duplicated()
    if dup.any():
        raise LedgerError(
            f"subscription {plan.loc[dup, 'subscription_id'].iloc[0]} is in the batch twice"
        )
    if "customer_fingerprint" in subscriptions.columns:
        fp = subscriptions["customer_fingerprint"].reset_index(drop=True)
        plan["customer_fingerprint"] = fp.astype(object).where(fp.notna(), None)
    else:
        plan["customer_fingerprint"] = None
    for column in ("paid_through", "first_target_period_start"):
        if column in subscriptions.columns:
            plan[column] = _utc(subscriptions[column].reset_index(drop=True), column)
        else:
            plan[column] = None
    check_texts(plan["subscription_id"], "the subscription ids")
    check_texts(plan["customer_id"], "the customer ids")
    check_texts(plan["customer_fingerprint"], "the customer fingerprints")
    return plan


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as dicts for executemany, missing values as None."""
    clean = frame.astype(object).where(frame.notna(), None)
    return clean.to_dict("records")  # type: ignore[return-value]


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """``ids`` in lists of at most CHUNK."""
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def _customer_fp(fingerprint: Any, extra: Mapping[str, str] | None = None) -> str | None:
    """The fingerprints JSON of one subscription's audit row."""
    fps: dict[str, str] = {}
    if isinstance(fingerprint, str):
        fps["customer"] = fingerprint
    fps.update(extra or {})
    return json.dumps(fps, sort_keys=True) if fps else None


def _frame(conn: sa.Connection, stmt: sa.Select[Any]) -> pd.DataFrame:
    """A query's rows as a frame: timestamps as UTC datetime64, the rest as read."""
    result = conn.execute(stmt)
    columns = list(result.keys())
    frame = pd.DataFrame(result.all(), columns=columns, dtype=object)
    for c in columns:
        if c in _TIME_COLUMNS:
            frame[c] = pd.to_datetime(frame[c], utc=True).astype("datetime64[us, UTC]")
        elif c in ("phase", "size", "n", "id"):
            frame[c] = frame[c].astype("int64")
        else:
            frame[c] = frame[c].astype("str")
    return frame


def _batch_from_row(row: Any) -> Batch:
    """A :class:`Batch` from its batches row."""
    return Batch(
        batch_id=row.batch_id,
        phase=row.phase,
        status=row.status,
        size=row.size,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        fingerprints=json.loads(row.inputs_json),
        rollout_fingerprint=row.rollout_fingerprint,
        snapshot_fingerprint=row.snapshot_fingerprint,
        gate_verdict=row.gate_verdict,
        gate_forced_reason=row.gate_forced_reason,
        gate_at=row.gate_at,
    )


def _refusal(batch_id: str, bad: pd.DataFrame, to_state: str) -> str:
    """The one-line error for subscriptions that may not move to ``to_state``."""
    first = bad.iloc[0]
    sid, state = first["subscription_id"], first["state"]
    if state == states.CUT_OVER and to_state == states.ROLLED_BACK:
        why = "a cut-over subscription is final: the target bills it now"
    elif state in states.FINAL_STATES:
        why = f"{state} is final"
    else:
        why = f"{to_state} is reached only from {', '.join(sorted(states.sources(to_state)))}"
    more = ""
    if len(bad) > 1:
        others = ", ".join(
            f"{r.subscription_id} ({r.state})" for r in bad.iloc[1:SHOW].itertuples()
        )
        more = f"; {len(bad) - 1} more refused: {others}" + (", ..." if len(bad) > SHOW else "")
    return (
        f"subscription {sid} of batch {batch_id} is {state} and cannot move to {to_state} "
        f"({why}){more}"
    )


def _batch_refusal(batch_id: str, old: str, new: str) -> str:
    """The one-line error for a batch status change the table does not allow."""
    if old == states.CUT_OVER and new == states.ROLLED_BACK:
        return (
            f"batch {batch_id} is cut over and cannot be rolled back: the target bills its "
            "subscriptions now"
        )
    if old in (states.CUT_OVER, states.ROLLED_BACK):
        return f"batch {batch_id} is {old}, which is final; it cannot become {new}"
    allowed = ", ".join(sorted(states.BATCH_TRANSITIONS[old]))
    return f"batch {batch_id} is {old} and cannot become {new} (from {old}: {allowed})"


def _stuck(rows: pd.DataFrame) -> pd.DataFrame:
    """The subscriptions that failed or are behind their batch's status, with a reason."""
    expected = rows["batch_status"].map(states.EXPECTED_STATE)
    progress = rows["state"].map(states.PROGRESS)
    behind = expected.notna() & (progress < expected.map(states.PROGRESS))
    failed = rows["state"] == states.FAILED
    not_rolled = rows["batch_status"] == states.ROLLED_BACK
    reason = pd.Series("", index=rows.index, dtype=object)
    reason[behind] = (rows["state"][behind] + ", batch is " + rows["batch_status"][behind]).astype(
        object
    )
    reason[not_rolled] = "not rolled back, batch is rolled_back"
    reason[failed] = "failed"
    out = rows[behind | failed | not_rolled].copy()
    out["reason"] = reason[out.index].astype("str")
    columns = [
        "batch_id",
        "batch_status",
        "subscription_id",
        "customer_id",
        "state",
        "reason",
        "error",
        "updated_at",
    ]
    return out[columns].reset_index(drop=True)
