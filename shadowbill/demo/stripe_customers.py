"""``shadowbill demo --stripe-customers``: some demo customers already pay through Stripe.

Before the first batch, every second USD customer of the demo company (in customer id
order) is created on the local Stripe-compatible server as the company's own integration
would have made it: its name and email, its legacy id in ``metadata.legacy_customer_id``
and a card as its default payment method. The batches then find them with the Search API
(``--find-customers metadata``) and attach their subscriptions to them. After the run,
:func:`customer_census` counts the server's customers per legacy id: none may be doubled,
and every migrated subscription of a pre-existing customer must hang on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import pandas as pd
import stripe

from shadowbill.snapshot.io import scan_columns

METADATA_KEY: Final = "legacy_customer_id"
TEST_CARD: Final = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}


def seed_existing_customers(client: stripe.StripeClient, snapshot_dir: Path) -> dict[str, str]:
    """Create every second USD customer of the snapshot on the server, with a default card;
    return legacy id -> Stripe customer id."""
    customers = scan_columns(
        snapshot_dir, "customers", ["customer_id", "name", "email", "currency"]
    )
    usd = customers[customers["currency"].astype(str).str.upper() == "USD"]
    chosen = usd.sort_values("customer_id").iloc[::2]
    out: dict[str, str] = {}
    for cid, name, email in zip(
        chosen["customer_id"].astype(str),
        chosen["name"].astype(str),
        chosen["email"].astype("string").fillna(""),
        strict=True,
    ):
        params: dict[str, Any] = {"name": name, "metadata": {METADATA_KEY: cid}}
        if email:
            params["email"] = email
        cus = client.v1.customers.create(params=cast(Any, params))
        pm = client.v1.payment_methods.create(params=cast(Any, {"type": "card", "card": TEST_CARD}))
        client.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
        client.v1.customers.update(
            cus.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
        out[cid] = cus.id
    return out


@dataclass(frozen=True)
class Census:
    """The server's customers after the run, against the pre-existing ones."""

    customers: int  # on the server
    pre_existing: int
    doubled: list[str]  # legacy ids with two or more Stripe customers
    attached_subscriptions: int  # migrated subscriptions on a pre-existing customer
    misplaced: list[str]  # migrated subscriptions of a pre-existing customer on another one


def customer_census(
    client: stripe.StripeClient, existing: dict[str, str], targets: pd.DataFrame
) -> Census:
    """Count the server's customers per legacy id; check where the migrated subscriptions
    hang (``targets``: the ledger's customer_id, target_customer_id, subscription_id)."""
    per_legacy: dict[str, int] = {}
    total = 0
    for cus in client.v1.customers.list(params={"limit": 100}).auto_paging_iter():
        total += 1
        legacy = cus.to_dict().get("metadata", {}).get(METADATA_KEY)
        if legacy:
            per_legacy[str(legacy)] = per_legacy.get(str(legacy), 0) + 1
    doubled = sorted(k for k, n in per_legacy.items() if n > 1)
    mine = targets[targets["customer_id"].astype(str).isin(existing)]
    misplaced = [
        str(r.subscription_id)
        for r in mine.itertuples()
        if str(r.target_customer_id) != existing[str(r.customer_id)]
    ]
    return Census(total, len(existing), doubled, len(mine) - len(misplaced), misplaced)
