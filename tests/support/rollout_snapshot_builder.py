"""Build small canonical snapshots in memory for rollout and translation tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shadowbill.snapshot.tables import TABLES, Snapshot, pandas_dtype

DEFAULT_START = "2025-01-01T00:00:00Z"


def ts(value: str | None) -> pd.Timestamp | None:
    """An aware UTC timestamp from ISO text (None stays None)."""
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


class SnapshotBuilder:
    """Collects rows table by table; ``build()`` gives a canonical Snapshot."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}

    def customer(
        self,
        customer_id: str,
        *,
        country: str = "US",
        currency: str = "USD",
        segment: str = "self_serve",
        created_at: str = "2024-06-01T00:00:00Z",
        tax_exempt: bool = False,
        **extra: Any,
    ) -> str:
        """Add a customer; extra keyword arguments become extra (metadata) columns."""
        self.rows["customers"].append(
            {
                "customer_id": customer_id,
                "name": f"Customer {customer_id}",
                "email": f"{customer_id}@example.com",
                "country": country,
                "currency": currency,
                "segment": segment,
                "created_at": ts(created_at),
                "tax_exempt": tax_exempt,
                **extra,
            }
        )
        return customer_id

    def subscription(
        self,
        subscription_id: str,
        customer_id: str,
        *,
        status: str = "active",
        interval: str = "month",
        interval_count: int = 1,
        started_at: str = DEFAULT_START,
        trial_end: str | None = None,
        canceled_at: str | None = None,
        currency: str = "USD",
    ) -> str:
        """Add a subscription."""
        self.rows["subscriptions"].append(
            {
                "subscription_id": subscription_id,
                "customer_id": customer_id,
                "status": status,
                "interval": interval,
                "interval_count": interval_count,
                "current_period_start": ts(started_at),
                "current_period_end": ts(started_at),
                "started_at": ts(started_at),
                "canceled_at": ts(canceled_at),
                "trial_end": ts(trial_end),
                "currency": currency,
            }
        )
        return subscription_id

    def item(
        self,
        subscription_id: str,
        price_id: str,
        quantity: int = 1,
        *,
        valid_from: str = DEFAULT_START,
        valid_to: str | None = None,
        item_id: str | None = None,
    ) -> None:
        """Add one row of item history."""
        self.rows["subscription_items"].append(
            {
                "item_id": item_id or f"{subscription_id}-{price_id}",
                "subscription_id": subscription_id,
                "price_id": price_id,
                "quantity": quantity,
                "valid_from": ts(valid_from),
                "valid_to": ts(valid_to),
            }
        )

    def discount(
        self,
        subscription_id: str,
        discount_id: str,
        *,
        percent_off: str | None = None,
        amount_off: int | None = None,
        item_id: str | None = None,
        starts_at: str = DEFAULT_START,
        ends_at: str | None = None,
    ) -> None:
        """Add a discount (subscription level unless ``item_id``)."""
        self.rows["discounts"].append(
            {
                "discount_id": discount_id,
                "subscription_id": subscription_id,
                "item_id": item_id,
                "coupon_id": None,
                "percent_off": percent_off,
                "amount_off": amount_off,
                "starts_at": ts(starts_at),
                "ends_at": ts(ends_at),
            }
        )

    def usage(self, subscription_id: str, meter: str, start: str, end: str, quantity: int) -> None:
        """Add a usage row."""
        self.rows["usage"].append(
            {
                "subscription_id": subscription_id,
                "meter": meter,
                "period_start": ts(start),
                "period_end": ts(end),
                "quantity": quantity,
            }
        )

    def add(
        self,
        subscription_id: str,
        items: list[tuple[str, int]],
        *,
        segment: str = "self_serve",
        currency: str = "USD",
        country: str = "US",
        created_at: str = "2024-06-01T00:00:00Z",
        **subscription: Any,
    ) -> str:
        """A customer (``c-<id>``) with one subscription and its current items."""
        customer_id = self.customer(
            f"c-{subscription_id}",
            segment=segment,
            currency=currency,
            country=country,
            created_at=created_at,
        )
        self.subscription(subscription_id, customer_id, currency=currency, **subscription)
        start = subscription.get("started_at", DEFAULT_START)
        for price_id, quantity in items:
            self.item(subscription_id, price_id, quantity, valid_from=start)
        return subscription_id

    def build(self) -> Snapshot:
        """The canonical snapshot (extra customer columns are kept)."""
        frames = {}
        for name, table in TABLES.items():
            frame = pd.DataFrame(self.rows[name])
            for column in table.column_names:
                if column not in frame.columns:
                    frame[column] = None
            extra = [c for c in frame.columns if c not in table.column_names]
            dtypes = {c.name: pandas_dtype(c.type) for c in table.columns}
            frames[name] = frame[table.column_names + extra].astype(dtypes)
        return Snapshot.from_frames(frames)
