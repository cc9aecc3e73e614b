"""Subscriptions whose legacy paid-through instant is already past when ``apply`` runs.

Stripe refuses a ``billing_cycle_anchor`` that is not in the future
(https://docs.stripe.com/billing/subscriptions/billing-cycle). A subscription planned to
start its first target period at its legacy paid-through instant ``T`` therefore cannot
be created once ``T`` has passed (an annual subscription started weeks ago and not yet
invoiced by an engine that bills in arrears, or a batch applied late). Such a
subscription is created the way "Backdate subscriptions"
(https://docs.stripe.com/billing/subscriptions/backdating) describes for migrations:

- ``backdate_start_date`` = ``T``: the subscription's history starts where the legacy
  billing stops (coupon durations count from it);
- ``billing_cycle_anchor`` = ``A``, the first period boundary of the subscription's own
  cadence from ``T`` that is still ahead (at least :data:`ANCHOR_MARGIN` after now), so
  its billing day stays the legacy one;
- ``proration_behavior`` = ``none``: Stripe bills nothing for ``[T, A)``; the first
  invoice is the full period starting at ``A``.

Nothing is billed twice and nothing is missed when the legacy engine bills ``[T, A)``:
the hand-over moves from ``T`` to ``A`` (the ledger records ``A`` as the batch
subscription's paid-through and first target period start, and keeps ``T`` in the
audit log). Subscription schedules are left as planned: Stripe itself accepts a past
``start_date`` on a schedule (it backdates it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from shadowbill.pricing.periods import cadence, first_start_at_or_after
from shadowbill.targets.model import Operation
from shadowbill.translate.keys import positions

ANCHOR_MARGIN: Final = pd.Timedelta(minutes=10)  # a request in flight still sees it ahead
BACKDATED_COLUMNS: Final[dict[str, str]] = {
    "subscription_id": "string",
    "paid_through": "datetime64[us, UTC]",
    "anchor": "datetime64[us, UTC]",
}
_US: Final = 1_000_000


def _utc(seconds: Sequence[int]) -> pd.Series:
    return pd.Series(pd.to_datetime(list(seconds), unit="s", utc=True)).astype(
        "datetime64[us, UTC]"
    )


def backdate_operations(
    operations: Sequence[Operation], subscriptions: pd.DataFrame, now: pd.Timestamp
) -> tuple[list[Operation], pd.DataFrame]:
    """The operations with every subscription whose anchor is not ahead of ``now`` (plus the
    margin) backdated, and those subscriptions (``BACKDATED_COLUMNS``, ``paid_through`` =
    ``T``, ``anchor`` = ``A``). ``subscriptions`` is the plan's canonical table (cadence)."""
    limit = int(pd.Timestamp(now).tz_convert("UTC").value // 1000) + int(
        ANCHOR_MARGIN.value // 1000
    )
    late = [
        op
        for op in operations
        if op.kind == "subscription"
        and op.subscription_id is not None
        and "billing_cycle_anchor" in op.params
        and int(op.params["billing_cycle_anchor"]) * _US <= limit
    ]
    if not late:
        return list(operations), pd.DataFrame(
            {k: pd.Series(dtype=v) for k, v in BACKDATED_COLUMNS.items()}
        )
    ids = pd.Series([op.subscription_id for op in late], dtype="string")
    subs = subscriptions.iloc[positions(ids, subscriptions["subscription_id"])]
    steps, _ = cadence(subs["interval"].reset_index(drop=True), subs["interval_count"])
    start_us = np.array([int(op.params["billing_cycle_anchor"]) * _US for op in late])
    anchor_us = first_start_at_or_after(start_us, steps, np.full(len(late), limit + 1))
    anchors = [int(a) // _US for a in anchor_us]
    moved = {
        op.key: dataclasses.replace(
            op,
            params={
                **op.params,
                "backdate_start_date": int(op.params["billing_cycle_anchor"]),
                "billing_cycle_anchor": a,
                "proration_behavior": "none",
            },
        )
        for op, a in zip(late, anchors, strict=True)
    }
    frame = pd.DataFrame(
        {
            "subscription_id": ids,
            "paid_through": _utc([int(op.params["billing_cycle_anchor"]) for op in late]),
            "anchor": _utc(anchors),
        }
    ).astype(BACKDATED_COLUMNS)
    return [moved.get(op.key, op) for op in operations], frame
