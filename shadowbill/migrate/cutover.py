"""``migrate cutover``: hand verified subscriptions over and stop legacy billing for exactly them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from shadowbill.errors import (
    GateClosedError,
    MigrationError,
)
from shadowbill.ledger import Ledger
from shadowbill.ledger import states as st
from shadowbill.listing import first_few
from shadowbill.migrate.batch_files import (
    CUTOVER_FILE,
    write_csv,
)
from shadowbill.migrate.batch_inputs import (
    SHOW,
    batch_inputs,
)
from shadowbill.snapshot.io import mask_password

_IDS_PARAM = re.compile(r":subscription_ids\b")
_ID_PARAM = re.compile(r":subscription_id\b")


@dataclass
class CutoverResult:
    """What ``cutover`` handed over."""

    batch_id: str
    status: str
    cut_over: list[str]
    cutover_path: Path
    statement_rows: int | None = None
    forced: list[str] = field(default_factory=list)


def stop_billing(source_url: str, statement: str, subscription_ids: list[str]) -> int:
    """Run the legacy stop-billing statement for exactly these subscriptions, in ONE transaction.

    A statement with ``:subscription_ids`` runs once with the list bound as an expanding
    ``IN`` parameter; one with ``:subscription_id`` runs once per id. Returns the rows the
    database reports as changed.
    """
    if _IDS_PARAM.search(statement):
        stmt = sa.text(statement).bindparams(sa.bindparam("subscription_ids", expanding=True))
        params: Any = {"subscription_ids": list(subscription_ids)}
    elif _ID_PARAM.search(statement):
        stmt = sa.text(statement)
        params = [{"subscription_id": s} for s in subscription_ids]
    else:
        raise MigrationError(
            "the stop-billing statement must name the subscriptions with :subscription_ids "
            "(a list, e.g. WHERE plan_ref IN :subscription_ids) or :subscription_id (run per id)"
        )
    where = mask_password(source_url)
    try:
        engine = sa.create_engine(source_url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise MigrationError(f"cannot open the legacy source {where}: {exc}") from None
    try:
        with engine.begin() as conn:
            result = conn.execute(stmt, params)
            return int(result.rowcount or 0)
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        raise MigrationError(
            f"the stop-billing statement failed on {where} (nothing was changed): "
            f"{mask_password(first)}"
        ) from None
    finally:
        engine.dispose()


def cutover_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    stop_statement: str | None = None,
    source_url: str | None = None,
    force_reason: str | None = None,
    out_dir: Path | None = None,
) -> CutoverResult:
    """Hand the batch's verified subscriptions over: cutover.csv, stop legacy billing, cut_over."""
    batch = ledger.batch(batch_id)
    if batch.status in (st.CUT_OVER, st.ROLLED_BACK):
        raise MigrationError(f"batch {batch_id} is {batch.status}; nothing to cut over")
    subs = ledger.subscriptions(batch_id)
    reason = (force_reason or "").strip()
    verified = subs[subs["state"] == st.VERIFIED]
    unverified = subs[subs["state"] == st.APPLIED]
    if len(unverified) and not reason:
        raise GateClosedError(
            f"{len(unverified)} subscription(s) of batch {batch_id} are not verified: "
            f"{first_few(unverified['subscription_id'], SHOW)}; run `shadowbill migrate verify --batch "
            f"{batch_id}`, or cut over with --force --reason '...'"
        )
    chosen = pd.concat([verified, unverified] if reason else [verified], ignore_index=True)
    if chosen.empty:
        raise MigrationError(
            f"batch {batch_id} has no verified subscription to cut over "
            f"(states: {subs['state'].value_counts().to_dict()})"
        )
    chosen = chosen.sort_values("subscription_id", ignore_index=True)
    gap = chosen[chosen["paid_through"] != chosen["first_target_period_start"]]
    if len(gap):
        raise MigrationError(
            f"{len(gap)} subscription(s) of batch {batch_id} would leave a gap or an overlap "
            f"(legacy paid-through != first target period start): {first_few(gap['subscription_id'], SHOW)}"
        )
    if stop_statement is not None and not source_url:
        raise MigrationError("a stop-billing statement needs --source (the legacy database URL)")
    folder = Path(out_dir) if out_dir is not None else batch_inputs(ledger, batch_id).out_dir
    handover = pd.DataFrame(
        {
            "legacy_subscription_id": chosen["subscription_id"],
            "paid_through": chosen["paid_through"],
            "target_subscription_id": chosen["target_subscription_id"],
            "first_target_period_start": chosen["first_target_period_start"],
        }
    )
    path = write_csv(folder / CUTOVER_FILE, handover)
    ids = chosen["subscription_id"].astype(str).tolist()
    rows = None
    if stop_statement is not None and source_url:
        rows = stop_billing(source_url, stop_statement, ids)
    forced = unverified["subscription_id"].astype(str).tolist() if reason else []
    if forced:
        ledger.transition(
            batch_id,
            forced,
            st.VERIFIED,
            detail={"forced": True, "reason": reason, "step": "cutover without verify"},
        )
    detail: dict[str, Any] = {"cutover_file": str(path), "stop_statement_rows": rows}
    if reason:
        detail["forced_reason"] = reason
    ledger.transition(batch_id, ids, st.CUT_OVER, detail=detail)
    states_after = ledger.subscriptions(batch_id)["state"]
    status = ledger.batch(batch_id).status
    if (states_after == st.CUT_OVER).all():
        if status != st.VERIFIED:
            ledger.set_batch_status(batch_id, st.VERIFIED, detail={"forced_reason": reason})
        ledger.set_batch_status(batch_id, st.CUT_OVER, detail=detail)
        status = st.CUT_OVER
    return CutoverResult(batch_id, status, ids, path, rows, forced)
