"""The ledger's batches: planning one, reading them, their status and their gate verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger import states
from shadowbill.ledger.connection import LedgerConnection
from shadowbill.ledger.errors import (
    BatchExistsError,
    LedgerError,
    SubscriptionTakenError,
    TransitionError,
)
from shadowbill.ledger.guard import check_text, safe_json
from shadowbill.ledger.records import (
    _BATCH_COLUMNS,
    _PG_LOCK_PLAN,
    SHOW,
    Batch,
    PlannedFrom,
    _batch_from_row,
    _batch_refusal,
    _check_batch_id,
    _customer_fp,
    _frame,
    _now,
    _phase,
    _plan_rows,
    _records,
)
from shadowbill.ledger.schema import (
    audit_log,
    batch_subscriptions,
    batches,
)


class BatchRecords(LedgerConnection):
    """The ledger's batches (a part of :class:`~shadowbill.ledger.store.Ledger`)."""

    def create_batch(
        self,
        phase: int,
        subscriptions: pd.DataFrame,
        fingerprints: Mapping[str, str],
        *,
        batch_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
        planned_from: PlannedFrom | None = None,
    ) -> str:
        """Record a planned batch of subscriptions; refuses ones still in a live batch.

        ``subscriptions`` has subscription_id and customer_id, and optionally
        customer_fingerprint, paid_through and first_target_period_start (naive
        timestamps are UTC). ``fingerprints`` names the plan's inputs (``rollout`` and
        ``snapshot`` fill the batch's columns of those names). The id is
        ``p{phase}-{n:04d}`` with the next n of that phase unless ``batch_id`` is given.
        ``planned_from`` records the instant and the files the batch was planned from.
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
                raise BatchExistsError(f"batch {new_id} already exists; choose another batch id")
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
                    **_planned_columns(planned_from),
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

    def record_watch(self, batch_id: str, detail: Mapping[str, Any]) -> None:
        """Record one run of comparison D (``migrate watch``) on a cut-over batch; one audit row."""
        detail_json = safe_json(dict(detail), "the watch detail")
        now = _now()
        with self._write() as conn:
            row = self._batch_row(conn, batch_id, lock=False)
            if row.status != states.CUT_OVER:
                raise TransitionError(
                    f"batch {batch_id} is {row.status}: only a cut-over batch is watched"
                )
            conn.execute(
                audit_log.insert(),
                [
                    self._audit_row(
                        now, "watch", batch_id, None, row.status, row.status, detail_json, None
                    )
                ],
            )


def _planned_columns(planned: PlannedFrom | None) -> dict[str, Any]:
    """The batches columns of what a batch was planned from (none when not given)."""
    if planned is None:
        return {}
    for name, text in (
        ("the snapshot folder", planned.snapshot_dir),
        ("the rollout path", planned.rollout_path),
        ("the policy path", planned.policy_path),
        ("the batch folder", planned.out_dir),
    ):
        if text is not None:
            check_text(text, name)
    return {
        "as_of": planned.as_of,
        "snapshot_dir": planned.snapshot_dir,
        "rollout_path": planned.rollout_path,
        "policy_path": planned.policy_path,
        "out_dir": planned.out_dir,
    }
