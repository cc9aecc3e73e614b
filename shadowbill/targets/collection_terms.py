"""Each migrated subscription's collection method and payment terms, from the legacy data
or the rollout's ``billing_terms`` per segment (:mod:`shadowbill.translate.collection_terms`).

Order, per subscription: the snapshot's ``subscriptions.collection_method`` /
``days_until_due`` (the legacy system's own terms), then the rollout's entry for the
customer's segment, then its entry without a segment, then Stripe's default
``charge_automatically``. A ``send_invoice`` subscription without days in its own row
takes the days of its segment's entry (or the default entry); with none it is an
OperationsError naming it, since Stripe needs ``days_until_due`` for ``send_invoice``
(https://docs.stripe.com/api/subscriptions/create#create_subscription-days_until_due).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import pandas as pd

from shadowbill.errors import OperationsError
from shadowbill.listing import first_few
from shadowbill.translate.collection_terms import DEFAULT_COLLECTION, CollectionTerms
from shadowbill.translate.keys import positions

TERMS_COLUMNS: Final[dict[str, str]] = {
    "subscription_id": "string",
    "collection_method": "string",
    "days_until_due": "Int64",
}


def _optional(frame: pd.DataFrame, name: str, dtype: str) -> pd.Series:
    if name in frame.columns:
        return pd.Series(frame[name].to_numpy(), dtype=dtype)
    return pd.Series(pd.NA, index=range(len(frame)), dtype=dtype)


def subscription_terms(
    subscription_ids: pd.Series,
    subscriptions: pd.DataFrame,
    customers: pd.DataFrame,
    rules: Sequence[CollectionTerms] = (),
) -> pd.DataFrame:
    """Per subscription id (in the given order) its collection method and days until due."""
    ids = subscription_ids.astype("string").reset_index(drop=True)
    subs = subscriptions.iloc[positions(ids, subscriptions["subscription_id"])]
    subs = subs.reset_index(drop=True)
    at = positions(subs["customer_id"], customers["customer_id"])
    segment = customers["segment"].astype("string").to_numpy()[at]
    by_segment: dict[str | None, CollectionTerms] = {r.segment: r for r in rules}
    default = by_segment.get(None)
    chosen = [by_segment.get(str(s), default) for s in segment]
    rule_method = pd.Series(
        [DEFAULT_COLLECTION if r is None else r.collection_method for r in chosen], dtype="string"
    )
    # the invoice days of the segment (or the default entry), for any invoiced subscription
    invoice_days = pd.Series(
        [
            next(
                (
                    r.days_until_due
                    for r in (by_segment.get(str(s)), default)
                    if r and r.days_until_due is not None
                ),
                None,
            )
            for s in segment
        ],
        dtype="Int64",
    )
    method = _optional(subs, "collection_method", "string").fillna(rule_method)
    invoiced = (method == "send_invoice").to_numpy(dtype=bool)
    days = _optional(subs, "days_until_due", "Int64").fillna(invoice_days)
    days = days.where(pd.Series(invoiced), pd.NA).astype("Int64")
    missing = invoiced & days.isna().to_numpy(dtype=bool)
    if missing.any():
        raise OperationsError(
            f"subscription {first_few(ids[missing].tolist())} is billed by invoice (send_invoice) "
            "without payment terms: give days_until_due in the snapshot or in the rollout's "
            "billing_terms for its segment"
        )
    out = pd.DataFrame(
        {"subscription_id": ids, "collection_method": method, "days_until_due": days}
    )
    return out.astype(TERMS_COLUMNS)
