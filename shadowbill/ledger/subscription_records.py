"""The ledger's subscriptions: their states, moves between states, and target ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger import states
from shadowbill.ledger.connection import LedgerConnection
from shadowbill.ledger.errors import (
    LedgerError,
    TransitionError,
)
from shadowbill.ledger.guard import check_text, check_texts, safe_json
from shadowbill.ledger.records import (
    _TIME_COLUMNS,
    SHOW,
    TARGET_COLUMNS,
    _check_state,
    _chunks,
    _customer_fp,
    _frame,
    _ids,
    _now,
    _records,
    _refusal,
    _utc,
)
from shadowbill.ledger.schema import (
    audit_log,
    batch_subscriptions,
)


class SubscriptionRecords(LedgerConnection):
    """Each batch subscription's state (a part of :class:`~shadowbill.ledger.store.Ledger`)."""

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
