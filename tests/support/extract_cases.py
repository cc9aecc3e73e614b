"""A small valid canonical company (text rows) and helpers for extraction tests."""

from __future__ import annotations

import csv
from pathlib import Path

from shadowbill.extract.run import ExtractResult
from shadowbill.snapshot.tables import TABLES, Snapshot

Rows = dict[str, list[dict[str, str]]]

_D = "T00:00:00Z"

# Three customers in USD, JPY and KWD; one invoice each whose lines add up.
BASE_ROWS: Rows = {
    "customers": [
        {
            "customer_id": "C1",
            "name": "Acme Inc",
            "email": "billing@acme.example",
            "country": "US",
            "currency": "USD",
            "segment": "self_serve",
            "created_at": "2024-01-01" + _D,
            "tax_exempt": "false",
        },
        {
            "customer_id": "C2",
            "name": "Kabushiki",
            "email": "",
            "country": "JP",
            "currency": "JPY",
            "segment": "sales",
            "created_at": "2024-01-02T09:00:00+09:00",
            "tax_exempt": "false",
        },
        {
            "customer_id": "C3",
            "name": "Souk Co",
            "email": "",
            "country": "KW",
            "currency": "KWD",
            "segment": "sales",
            "created_at": "2024-01-03" + _D,
            "tax_exempt": "true",
        },
    ],
    "subscriptions": [
        {
            "subscription_id": "S1",
            "customer_id": "C1",
            "status": "active",
            "interval": "month",
            "interval_count": "1",
            "current_period_start": "2024-03-01" + _D,
            "current_period_end": "2024-04-01" + _D,
            "started_at": "2024-01-01" + _D,
            "canceled_at": "",
            "trial_end": "",
            "currency": "USD",
        },
        {
            "subscription_id": "S2",
            "customer_id": "C2",
            "status": "active",
            "interval": "month",
            "interval_count": "1",
            "current_period_start": "2024-03-02" + _D,
            "current_period_end": "2024-04-02" + _D,
            "started_at": "2024-01-02" + _D,
            "canceled_at": "",
            "trial_end": "",
            "currency": "JPY",
        },
        {
            "subscription_id": "S3",
            "customer_id": "C3",
            "status": "active",
            "interval": "year",
            "interval_count": "1",
            "current_period_start": "2024-01-03" + _D,
            "current_period_end": "2025-01-03" + _D,
            "started_at": "2024-01-03" + _D,
            "canceled_at": "",
            "trial_end": "",
            "currency": "KWD",
        },
    ],
    "subscription_items": [
        {
            "item_id": "I1",
            "subscription_id": "S1",
            "price_id": "pro_month",
            "quantity": "3",
            "valid_from": "2024-01-01" + _D,
            "valid_to": "2024-02-15" + _D,
        },
        {
            "item_id": "I1",
            "subscription_id": "S1",
            "price_id": "pro_month",
            "quantity": "5",
            "valid_from": "2024-02-15" + _D,
            "valid_to": "",
        },
        {
            "item_id": "I2",
            "subscription_id": "S2",
            "price_id": "starter_month",
            "quantity": "2",
            "valid_from": "2024-01-02" + _D,
            "valid_to": "",
        },
        {
            "item_id": "I3",
            "subscription_id": "S3",
            "price_id": "pro_year",
            "quantity": "1",
            "valid_from": "2024-01-03" + _D,
            "valid_to": "",
        },
    ],
    "discounts": [
        {
            "discount_id": "D1",
            "subscription_id": "S1",
            "item_id": "I1",
            "coupon_id": "TEN",
            "percent_off": "10",
            "amount_off": "",
            "starts_at": "2024-01-01" + _D,
            "ends_at": "2025-01-01" + _D,
        }
    ],
    "usage": [
        {
            "subscription_id": "S1",
            "meter": "sms_messages",
            "period_start": "2024-01-01" + _D,
            "period_end": "2024-02-01" + _D,
            "quantity": "120",
        }
    ],
    "invoices": [
        {
            "invoice_id": "V1",
            "subscription_id": "S1",
            "customer_id": "C1",
            "period_start": "2024-01-01" + _D,
            "period_end": "2024-02-01" + _D,
            "currency": "USD",
            "subtotal": "11820",
            "discount": "1170",
            "tax": "0",
            "total": "10650",
            "status": "paid",
            "issued_at": "2024-02-01" + _D,
        },
        {
            "invoice_id": "V2",
            "subscription_id": "S2",
            "customer_id": "C2",
            "period_start": "2024-01-02" + _D,
            "period_end": "2024-02-02" + _D,
            "currency": "JPY",
            "subtotal": "11800",
            "discount": "0",
            "tax": "1180",
            "total": "12980",
            "status": "paid",
            "issued_at": "2024-02-02" + _D,
        },
        {
            "invoice_id": "V3",
            "subscription_id": "S3",
            "customer_id": "C3",
            "period_start": "2024-01-03" + _D,
            "period_end": "2025-01-03" + _D,
            "currency": "KWD",
            "subtotal": "390000",
            "discount": "0",
            "tax": "0",
            "total": "390000",
            "status": "paid",
            "issued_at": "2025-01-03" + _D,
        },
    ],
    "invoice_lines": [
        {
            "line_id": "L1",
            "invoice_id": "V1",
            "price_id": "pro_month",
            "kind": "recurring",
            "description": "3 x Pro",
            "quantity": "3",
            "unit_amount_decimal": "3900",
            "amount": "11700",
            "period_start": "2024-01-01" + _D,
            "period_end": "2024-02-01" + _D,
        },
        {
            "line_id": "L2",
            "invoice_id": "V1",
            "price_id": "sms_month",
            "kind": "usage",
            "description": "120 x SMS",
            "quantity": "120",
            "unit_amount_decimal": "1.00",
            "amount": "120",
            "period_start": "2024-01-01" + _D,
            "period_end": "2024-02-01" + _D,
        },
        {
            "line_id": "L3",
            "invoice_id": "V1",
            "price_id": "",
            "kind": "discount",
            "description": "10% off",
            "quantity": "",
            "unit_amount_decimal": "",
            "amount": "-1170",
            "period_start": "2024-01-01" + _D,
            "period_end": "2024-02-01" + _D,
        },
        {
            "line_id": "L4",
            "invoice_id": "V2",
            "price_id": "starter_month",
            "kind": "recurring",
            "description": "2 x Starter",
            "quantity": "2",
            "unit_amount_decimal": "5900",
            "amount": "11800",
            "period_start": "2024-01-02" + _D,
            "period_end": "2024-02-02" + _D,
        },
        {
            "line_id": "L5",
            "invoice_id": "V2",
            "price_id": "",
            "kind": "tax",
            "description": "JCT 10%",
            "quantity": "",
            "unit_amount_decimal": "",
            "amount": "1180",
            "period_start": "2024-01-02" + _D,
            "period_end": "2024-02-02" + _D,
        },
        {
            "line_id": "L6",
            "invoice_id": "V3",
            "price_id": "pro_year",
            "kind": "recurring",
            "description": "1 x Pro annual",
            "quantity": "1",
            "unit_amount_decimal": "390000",
            "amount": "390000",
            "period_start": "2024-01-03" + _D,
            "period_end": "2025-01-03" + _D,
        },
    ],
    "tax_rates": [
        {"tax_rate_id": "T_JP", "percentage": "10.0", "inclusive": "false", "country": "JP"}
    ],
}


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    """Write rows as a UTF-8 CSV with the given header."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_folder(folder: Path, rows: Rows) -> Path:
    """A folder of canonical CSV files, one per table of ``rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, table_rows in rows.items():
        write_csv(folder / f"{name}.csv", table_rows, TABLES[name].column_names)
    return folder


def quarantined(snapshot: Snapshot, table: str) -> dict[str, str]:
    """source_ref -> reason of one table's quarantined rows."""
    q = snapshot.quarantine
    rows = q[q["table"] == table]
    return dict(zip(rows["source_ref"], rows["reason"], strict=True))


def assert_conserved(result: ExtractResult) -> None:
    """rows_in == rows_out + quarantined for every table, and the snapshot holds what it says."""
    for name, c in result.counts.items():
        assert c.rows_in == c.rows_out + c.quarantined, name
