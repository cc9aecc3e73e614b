"""``migrate rollback``: remove what a batch created on the target; its subscriptions return to the pool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from shadowbill.errors import (
    MigrationError,
)
from shadowbill.ledger import Ledger
from shadowbill.ledger import states as st
from shadowbill.listing import first_few
from shadowbill.migrate.batch_inputs import (
    SHOW,
    open_target,
)
from shadowbill.targets.stripe_api import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    scrub_key,
)


@dataclass
class RollbackResult:
    """What ``rollback`` removed and returned to the pool."""

    batch_id: str
    removed: list[tuple[str, str]]
    kept: list[tuple[str, str]]  # shared with a live batch, or catalog objects kept
    rolled_back: list[str]


def rollback_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    rate_limit: float = DEFAULT_RATE_LIMIT,
    concurrency: int = DEFAULT_CONCURRENCY,
    deactivate_catalog: bool = False,
    force_reason: str | None = None,
    http_client: stripe.HTTPClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> RollbackResult:
    """Remove what the batch created on the target (reverse order); its subscriptions return to the pool."""
    batch = ledger.batch(batch_id)
    if batch.status in (st.CUT_OVER, st.ROLLED_BACK):
        raise MigrationError(
            f"batch {batch_id} is {batch.status}"
            + (
                ": the target bills its subscriptions now; it cannot be rolled back"
                if batch.status == st.CUT_OVER
                else "; nothing to roll back"
            )
        )
    subs = ledger.subscriptions(batch_id)
    cut = subs.loc[subs["state"] == st.CUT_OVER, "subscription_id"].tolist()
    if cut:
        raise MigrationError(
            f"batch {batch_id} cannot be rolled back: {len(cut)} subscription(s) are cut over "
            f"({first_few(cut, SHOW)}) and the target bills them now"
        )
    held = ledger.lease(batch_id)
    if held is not None:  # a running apply: removing now would race its creations
        raise MigrationError(
            f"batch {batch_id} is being applied right now by {held.describe()}; rollback "
            "(even --force) waits until that apply ends or its lease expires"
        )
    reason = (force_reason or "").strip()
    if batch.status == st.APPLYING and not reason:
        raise MigrationError(
            f"batch {batch_id} was interrupted while applying: objects created in the last "
            f"moments may not be in the ledger yet; run `shadowbill migrate apply --batch "
            f"{batch_id}` to finish (it records every object), then roll back, or roll back "
            "with --force --reason '...'"
        )
    live = ledger.objects(batch_id, live_only=True)
    statuses = ledger.batches()[["batch_id", "status"]]
    status_of = dict(zip(statuses["batch_id"], statuses["status"], strict=True))
    remove: list[tuple[str, str]] = []
    op_of: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for row in live.itertuples():
        others = [
            b
            for b in ledger.object_batches(str(row.op_key))
            if b != batch_id and status_of.get(b) != st.ROLLED_BACK
        ]
        if others:
            kept.append((str(row.kind), str(row.target_id)))
            continue
        remove.append((str(row.kind), str(row.target_id)))
        op_of[str(row.target_id)] = str(row.op_key)
    removed: list[tuple[str, str]] = []
    if remove:
        target = open_target(api_key, base_url, rate_limit, concurrency, http_client, timeout)
        report = target.cancel_and_remove(remove, deactivate_catalog=deactivate_catalog)
        for _kind, tid in [*report.removed, *report.deactivated]:
            ledger.mark_deleted(batch_id, op_of[tid])
        removed = [*report.removed, *report.deactivated]
        kept += report.kept
        if report.failed:
            first = next(iter(report.failed.values()))
            raise MigrationError(
                f"rollback of batch {batch_id}: {len(report.failed)} object(s) could not be "
                f"removed from the target ({scrub_key(first)}); run rollback again"
            )
    open_subs = subs.loc[~subs["state"].isin(list(st.FINAL_STATES)), "subscription_id"].tolist()
    detail: dict[str, Any] = {"removed": len(removed), "kept": len(kept)}
    if reason:
        detail["forced_reason"] = reason
    if open_subs:
        ledger.transition(batch_id, open_subs, st.ROLLED_BACK, detail=detail)
    ledger.set_batch_status(batch_id, st.ROLLED_BACK, detail=detail)
    return RollbackResult(batch_id, removed, kept, sorted(open_subs))
