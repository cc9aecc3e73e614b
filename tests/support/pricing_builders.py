"""Small in-memory snapshots and catalogs for pricing tests."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shadowbill.pricing.catalog import Catalog
from shadowbill.snapshot.tables import TABLES, Snapshot, pandas_dtype


def frame(table: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A canonical frame of ``table`` from row dicts (missing columns are empty)."""
    spec = TABLES[table]
    data: dict[str, Any] = {}
    for column in spec.columns:
        values = [row.get(column.name) for row in rows]
        dtype = pandas_dtype(column.type)
        if dtype.startswith("datetime"):
            data[column.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True).astype(
                dtype
            )
        else:
            data[column.name] = pd.Series(values, dtype=object).astype(dtype)
    return pd.DataFrame(data)


def snapshot(**tables: list[dict[str, Any]]) -> Snapshot:
    """A snapshot from row dicts per table; customers default to one per subscription."""
    subs = tables.get("subscriptions", [])
    if "customers" not in tables:
        tables["customers"] = [
            {
                "customer_id": s["customer_id"],
                "name": s["customer_id"],
                "country": s.get("_country", "US"),
                "currency": s.get("currency", "USD"),
                "segment": "self_serve",
                "created_at": s["started_at"],
                "tax_exempt": False,
            }
            for s in subs
        ]
    for s in subs:
        s.pop("_country", None)
    return Snapshot.from_frames({name: frame(name, rows) for name, rows in tables.items()})


def subscription(
    sid: str = "s1",
    *,
    started_at: str = "2025-01-01T00:00:00Z",
    interval: str = "month",
    interval_count: int = 1,
    currency: str = "USD",
    country: str = "US",
    trial_end: str | None = None,
    canceled_at: str | None = None,
) -> dict[str, Any]:
    """A subscription row (with its customer's country)."""
    return {
        "subscription_id": sid,
        "customer_id": f"c_{sid}",
        "status": "canceled" if canceled_at else "active",
        "interval": interval,
        "interval_count": interval_count,
        "current_period_start": started_at,
        "current_period_end": started_at,
        "started_at": started_at,
        "canceled_at": canceled_at,
        "trial_end": trial_end,
        "currency": currency,
        "_country": country,
    }


def item(
    item_id: str,
    price_id: str,
    quantity: int = 1,
    valid_from: str = "2025-01-01T00:00:00Z",
    valid_to: str | None = None,
    sid: str = "s1",
) -> dict[str, Any]:
    """An item history row."""
    return {
        "item_id": item_id,
        "subscription_id": sid,
        "price_id": price_id,
        "quantity": quantity,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }


def usage(meter: str, period_start: str, quantity: int, sid: str = "s1") -> dict[str, Any]:
    """A usage row for the period starting at ``period_start``."""
    return {
        "subscription_id": sid,
        "meter": meter,
        "period_start": period_start,
        "period_end": period_start,
        "quantity": quantity,
    }


def catalog(
    prices: list[dict[str, Any]],
    *,
    coupons: list[dict[str, Any]] | None = None,
    tax_rates: list[dict[str, Any]] | None = None,
    engine: dict[str, Any] | None = None,
    **extra: Any,
) -> Catalog:
    """A catalog whose products are the prices' products (``extra``: more catalog keys)."""
    products = sorted({p["product"] for p in prices})
    return Catalog.model_validate(
        {
            "catalog": "test",
            "currency": "usd",
            "engine": engine or {},
            "products": [{"id": p, "name": p.title()} for p in products],
            "prices": prices,
            "coupons": coupons or [],
            "tax_rates": tax_rates or [],
            **extra,
        }
    )


def seat_price(
    pid: str = "seat", amount: int = 1000, *, product: str = "seat", **extra: Any
) -> dict[str, Any]:
    """A licensed monthly per-unit price."""
    return {
        "id": pid,
        "product": product,
        "currency": "usd",
        "unit_amount": amount,
        "recurring": {"interval": "month"},
        **extra,
    }
