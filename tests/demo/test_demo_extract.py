"""The extract spec maps the whole demo database onto the canonical tables, quarantining nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shadowbill.demo.generate import DemoResult
from shadowbill.snapshot.io import read_snapshot

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

EXPECTED = {
    "customers": "accounts",
    "subscriptions": "plans_active",
    "subscription_items": "plan_lines",
    "discounts": "promo_grants",
    "usage": "meter_readings",
    "invoices": "bills",
    "invoice_lines": "bill_items",
    "tax_rates": "vat_rates",
}


def test_extract_quarantines_nothing(demo: DemoResult, tmp_path: Path) -> None:
    extract = pytest.importorskip("shadowbill.extract.run")
    out = tmp_path / "snap"
    extract.extract(
        f"sqlite:///{demo.db_path}", demo.spec_path, out, chunk_size=5000, progress=False
    )
    snap = read_snapshot(out)
    quarantine = snap.quarantine
    assert quarantine.empty, quarantine.head().to_dict("records")
    for table, legacy in EXPECTED.items():
        assert len(snap[table]) == demo.table_counts[legacy], table
    lines = snap["invoice_lines"]
    invoices = snap["invoices"]
    planted = pd.read_csv(demo.errors_path, keep_default_na=False)
    assert set(planted["invoice_id"]) <= set(invoices["invoice_id"])
    assert set(planted["line_id"]) - {""} <= set(lines["line_id"])
    sms = lines[
        (lines["price_id"] == "sms_month")
        & (lines["invoice_id"].isin(invoices.loc[invoices["currency"] == "USD", "invoice_id"]))
    ]
    assert set(sms["unit_amount_decimal"]) == {"0.75"}
