"""Inputs for the target operation tests: the small demo company and a hand-made plan.

Imported by the test modules (``from ops_fixtures import ...``); fixtures are built once
per module there.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pandas as pd
from demo_companies import demo_company

from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import TABLES, Snapshot, pandas_dtype
from shadowbill.translate.plan import (
    ASSIGNMENT_COLUMNS,
    LINEAGE_COLUMNS,
    PROTECTION_COLUMNS,
    UNMAPPED_COLUMNS,
    Plan,
    empty_frame,
    pin,
)
from shadowbill.translate.rollout import Rollout, load_rollout

DEMO = {"customers": 200, "months": 12, "seed": 7}


def demo_rollout() -> Rollout:
    """The demo company's rollout (three phases) with its two catalogs."""
    with as_file(files("shadowbill.examples").joinpath("demo_company")) as path:
        return load_rollout(Path(path) / "rollout.yaml")


_DEMO: dict[str, Snapshot] = {}


def demo_snapshot(root: Path) -> Snapshot:
    """The 200-customer demo company extracted into a snapshot (under ``root`` the first
    time; later calls in the same test process reuse it, read-only)."""
    if "snapshot" not in _DEMO:
        _DEMO["snapshot"] = read_snapshot(demo_company(**DEMO).snapshot)
    return _DEMO["snapshot"]


def T(text: str) -> pd.Timestamp:
    """An aware UTC timestamp (a naive text is UTC)."""
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _table(name: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = TABLES[name]
    frame = pd.DataFrame(rows, columns=table.column_names)
    return frame.astype({c.name: pandas_dtype(c.type) for c in table.columns})


def tiny_case() -> tuple[Plan, Rollout, Snapshot]:
    """A hand-made phase-3 plan of three subscriptions over the demo catalogs.

    - S1 (C1, GB, gbp, monthly): essential_month x3 and metered sms_tiered; a forever 10%
      coupon and an amount-off line discount on the seats ending 2026-04-15; legacy
      invoiced up to 2025-12-15T10:00, cut-over 2026-01-01.
    - S2 (C2, US, usd, yearly): pro_year x5 kept, switched to advanced_year on
      2026-03-01T08:00; a forever 3000 cents coupon; invoiced up to 2025-03-01T08:00 and cut
      over at that renewal, so its target future has two phases (a schedule).
    - S3 (C3, DE, tax exempt, eur, monthly): advanced_month x2 and metered fin_resolution;
      a 12.5% discount without coupon id ending 2026-01-10T12:30; no legacy invoice; cut-over
      2026-01-01, so paid through the last renewal before it, 2025-12-10T12:30.
    """
    customers = _table(
        "customers",
        [
            {
                "customer_id": "C1",
                "name": "Ada Ltd",
                "email": "billing@ada.example",
                "country": "GB",
                "currency": "GBP",
                "segment": "sales",
                "created_at": T("2024-01-01T00:00:00Z"),
                "tax_exempt": False,
            },
            {
                "customer_id": "C2",
                "name": "Bo, Inc.",
                "email": None,
                "country": "US",
                "currency": "USD",
                "segment": "self_serve",
                "created_at": T("2024-02-01T00:00:00Z"),
                "tax_exempt": False,
            },
            {
                "customer_id": "C3",
                "name": "Cy Großhandel GmbH",
                "email": "rechnung@cy.example",
                "country": "DE",
                "currency": "EUR",
                "segment": "self_serve",
                "created_at": T("2025-06-01T00:00:00Z"),
                "tax_exempt": True,
            },
        ],
    )

    def sub(sid: str, cid: str, interval: str, started: str, cps: str, cpe: str, cur: str):
        return {
            "subscription_id": sid,
            "customer_id": cid,
            "status": "active",
            "interval": interval,
            "interval_count": 1,
            "current_period_start": T(cps),
            "current_period_end": T(cpe),
            "started_at": T(started),
            "canceled_at": None,
            "trial_end": None,
            "currency": cur,
        }

    subscriptions = _table(
        "subscriptions",
        [
            sub(
                "S1",
                "C1",
                "month",
                "2025-01-15T10:00:00Z",
                "2025-12-15T10:00:00Z",
                "2026-01-15T10:00:00Z",
                "GBP",
            ),
            sub(
                "S2",
                "C2",
                "year",
                "2024-03-01T08:00:00Z",
                "2025-03-01T08:00:00Z",
                "2026-03-01T08:00:00Z",
                "USD",
            ),
            sub(
                "S3",
                "C3",
                "month",
                "2025-06-10T12:30:00Z",
                "2025-12-10T12:30:00Z",
                "2026-01-10T12:30:00Z",
                "EUR",
            ),
        ],
    )

    def item(sid: str, price: str, qty: int, start: str, end: str | None = None):
        return {
            "item_id": f"{sid}:{price}",
            "subscription_id": sid,
            "price_id": price,
            "quantity": qty,
            "valid_from": T(start),
            "valid_to": None if end is None else T(end),
        }

    items = _table(
        "subscription_items",
        [
            item("S1", "essential_month", 3, "2025-01-15T10:00:00Z"),
            item("S1", "sms_tiered", 1, "2025-01-15T10:00:00Z"),
            item("S2", "pro_year", 5, "2024-03-01T08:00:00Z", "2026-03-01T08:00:00Z"),
            item("S2", "advanced_year", 5, "2026-03-01T08:00:00Z"),
            item("S3", "advanced_month", 2, "2025-06-10T12:30:00Z"),
            item("S3", "fin_resolution", 1, "2025-06-10T12:30:00Z"),
        ],
    )

    def discount(did: str, sid: str, **kw: Any) -> dict[str, Any]:
        row = {
            "discount_id": did,
            "subscription_id": sid,
            "item_id": None,
            "coupon_id": None,
            "percent_off": None,
            "amount_off": None,
            "ends_at": None,
        }
        row.update(kw)
        row["starts_at"] = T(row["starts_at"])
        row["ends_at"] = None if row["ends_at"] is None else T(row["ends_at"])
        return row

    discounts = _table(
        "discounts",
        [
            discount("D1", "S1", coupon_id="LOYAL10", percent_off="10", starts_at="2025-01-15"),
            discount(
                "D2",
                "S1",
                item_id="S1:essential_month",
                coupon_id="SEATS5",
                amount_off=500,
                starts_at="2025-06-01",
                ends_at="2026-04-15T10:00:00Z",
            ),
            discount(
                "D3",
                "S3",
                percent_off="12.5",
                starts_at="2025-06-10T12:30:00Z",
                ends_at="2026-01-10T12:30:00Z",
            ),
            discount("D4", "S2", coupon_id="ANNUAL30", amount_off=3000, starts_at="2024-03-01"),
        ],
    )
    new = Snapshot.from_frames(
        {
            "customers": customers,
            "subscriptions": subscriptions,
            "subscription_items": items,
            "discounts": discounts,
        }
    )
    invoices = _table(
        "invoices",
        [
            {
                "invoice_id": "I1",
                "subscription_id": "S1",
                "customer_id": "C1",
                "period_start": T("2025-11-15T10:00:00Z"),
                "period_end": T("2025-12-15T10:00:00Z"),
                "currency": "GBP",
                "subtotal": 9300,
                "discount": 930,
                "tax": 1674,
                "total": 10044,
                "status": "paid",
                "issued_at": T("2025-12-15T10:00:00Z"),
            },
            {
                "invoice_id": "I2",
                "subscription_id": "S2",
                "customer_id": "C2",
                "period_start": T("2024-03-01T08:00:00Z"),
                "period_end": T("2025-03-01T08:00:00Z"),
                "currency": "USD",
                "subtotal": 495000,
                "discount": 3000,
                "tax": 0,
                "total": 492000,
                "status": "paid",
                "issued_at": T("2025-03-01T08:00:00Z"),
            },
        ],
    )
    legacy = Snapshot.from_frames(
        {"customers": customers, "subscriptions": subscriptions, "invoices": invoices}
    )

    def assignment(sid: str, cid: str, cur: str, cutover: str) -> dict[str, Any]:
        return {
            "subscription_id": sid,
            "customer_id": cid,
            "phase": 3,
            "rule_id": "hand_made",
            "history_rule_ids": "hand_made",
            "cutover_at": T(cutover),
            "discounts_policy": "carry",
            "currency": cur,
            "price_protection": False,
            "discounts_carried": 0,
            "discounts_dropped": 0,
        }

    assignments = pin(
        pd.DataFrame(
            [
                assignment("S1", "C1", "gbp", "2026-01-01T00:00:00Z"),
                assignment("S2", "C2", "usd", "2025-03-01T08:00:00Z"),
                assignment("S3", "C3", "eur", "2026-01-01T00:00:00Z"),
            ]
        ).fillna({c: "" for c, t in ASSIGNMENT_COLUMNS.items() if t == "string"}),
        ASSIGNMENT_COLUMNS,
    )
    plan = Plan(
        phase=3,
        phase_name="hand made",
        as_of=T("2026-01-01T00:00:00Z"),
        snapshot=new,
        assignments=assignments,
        protections=empty_frame(PROTECTION_COLUMNS),
        unmapped=empty_frame(UNMAPPED_COLUMNS),
        lineage=empty_frame(LINEAGE_COLUMNS),
        cohort_size=3,
    )
    return plan, demo_rollout(), legacy
