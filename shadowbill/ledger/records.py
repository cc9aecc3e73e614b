"""What the ledger stores and returns: batches, status, the columns of a plan, and the row helpers
every part of the ledger shares (ids, timestamps, refusals)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import operator
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa

from shadowbill.ledger import migrations, states
from shadowbill.ledger.errors import (
    LedgerError,
    TransitionError,
)
from shadowbill.ledger.guard import check_texts
from shadowbill.ledger.schema import (
    BATCH_ID,
    ID,
)
from shadowbill.snapshot.io import mask_password

CHUNK: Final = 500  # ids per IN (...) list: well under every database's bind limit
SHOW: Final = 5  # ids named in an error message
_READ_ONLY: Final = migrations.READ_ONLY_OPTION
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
_PG_LOCK_PLAN: Final = 2
_PG_LOCK_OBJECT: Final = 3
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
class PlannedFrom:
    """What a batch was planned from: the instant its cohorts were judged at and its files."""

    as_of: dt.datetime
    snapshot_dir: str
    rollout_path: str
    policy_path: str | None
    out_dir: str


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
    planned_from: PlannedFrom | None = None  # None for a batch planned before revision 0003

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
    # objects still live on the target although their batch was rolled back (a forced
    # rollback, or one whose removals failed): batch_id, op_key, kind, subscription_id, target_id
    orphans: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def ok(self) -> bool:
        """True when nothing is stuck and no rolled-back batch left an object live."""
        return self.stuck.empty and self.orphans.empty

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (timestamps as ISO-8601 strings)."""
        return {
            "batches": json.loads(self.batches.to_json(orient="records", date_format="iso")),
            "stuck": json.loads(self.stuck.to_json(orient="records", date_format="iso")),
            "orphans": json.loads(self.orphans.to_json(orient="records", date_format="iso")),
        }


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
        planned_from=None
        if row.as_of is None
        else PlannedFrom(
            row.as_of, row.snapshot_dir, row.rollout_path, row.policy_path, row.out_dir
        ),
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
