"""Stripe invoice previews (current and older API shapes) as canonical frames."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shadowbill.snapshot.tables import INVOICE_LINES, INVOICES
from shadowbill.targets.previews import preview_frames

A, B, C = 1_800_000_000, 1_802_592_000, 1_797_000_000  # anchor, next period, earlier


def current_api_preview() -> dict[str, Any]:
    """A create_preview answer in Stripe's current shape: pricing/parent, total_taxes."""

    def line(lid: str, price: str, amount: int, qty: int | None, start: int, end: int,
             proration: bool = False, unit: str | None = None) -> dict[str, Any]:  # fmt: skip
        return {
            "id": lid,
            "amount": amount,
            "quantity": qty,
            "description": lid,
            "period": {"start": start, "end": end},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price, "product": "prod_1"},
                "unit_amount_decimal": unit,
            },
            "parent": {
                "type": "subscription_item_details",
                "subscription_item_details": {"proration": proration},
            },
        }

    return {
        "id": "upcoming_in_1",
        "currency": "EUR",
        "subtotal": 12_250,
        "total": 13_500,
        "period_start": C,
        "period_end": A,
        "total_discount_amounts": [{"amount": 1_000, "discount": "di_1"}],
        "total_taxes": [{"amount": 2_000}, {"amount": 250}],
        "lines": {
            "data": [
                line("il_seats", "price_seat", 11_700, 3, A, B, unit="3900.000"),
                line("il_usage", "price_res", 750, 1000, C, A, unit="0.75"),
                line("il_prorate", "price_seat", -200, 1, C + 5, A, proration=True, unit="3900"),
            ]
        },
    }


def test_current_api_shape_maps_to_canonical_columns() -> None:
    invoices, lines = preview_frames(
        [("sub_legacy", "cus_legacy", current_api_preview())],
        price_ids={"price_seat": "advanced_month", "price_res": "resolution"},
        metered={"resolution"},
    )
    assert list(invoices.columns) == INVOICES.column_names
    assert list(lines.columns) == INVOICE_LINES.column_names
    inv = invoices.iloc[0]
    assert (inv["subscription_id"], inv["customer_id"], inv["currency"]) == ("sub_legacy", "cus_legacy", "eur")  # fmt: skip
    assert (inv["subtotal"], inv["discount"], inv["tax"], inv["total"]) == (12_250, 1_000, 2_250, 13_500)  # fmt: skip
    # The billed period is the recurring lines' period, not the invoice's own fields.
    assert inv["period_start"] == pd.Timestamp(A, unit="s", tz="UTC")
    assert inv["period_end"] == pd.Timestamp(B, unit="s", tz="UTC")
    assert inv["issued_at"] == inv["period_start"] and inv["status"] == "draft"
    assert inv["invoice_id"] == "upcoming_in_1"
    by_id = lines.set_index("line_id")
    assert by_id.loc["il_seats", "kind"] == "recurring"
    assert by_id.loc["il_usage", "kind"] == "usage"
    assert by_id.loc["il_prorate", "kind"] == "proration"
    assert by_id.loc["il_seats", "price_id"] == "advanced_month"
    assert by_id.loc["il_seats", "unit_amount_decimal"] == "3900"
    assert by_id.loc["il_usage", "unit_amount_decimal"] == "0.75"
    assert list(lines["amount"]) == [11_700, 750, -200]
    assert str(lines["amount"].dtype) == "Int64"


def test_older_shape_with_price_objects_and_metadata() -> None:
    preview = {
        "id": None,
        "currency": "usd",
        "subtotal": 1_500,
        "tax": 300,
        "total": 1_800,
        "lines": {
            "data": [
                {
                    "amount": 1_000,
                    "quantity": 2,
                    "proration": False,
                    "period": {"start": A, "end": B},
                    "price": {
                        "id": "price_x",
                        "lookup_key": "lk_x",
                        "metadata": {"shadowbill_price_id": "seat"},
                        "unit_amount_decimal": "500",
                        "billing_scheme": "per_unit",
                        "recurring": {"usage_type": "licensed"},
                    },
                },
                {
                    "amount": 500,
                    "quantity": 7,
                    "proration": False,
                    "period": {"start": C, "end": A},
                    "price": {
                        "id": "price_y",
                        "lookup_key": "lk_y",
                        "metadata": {},
                        "billing_scheme": "tiered",
                        "recurring": {"usage_type": "metered"},
                    },
                },
                {"amount": 0, "quantity": 1, "period": {"start": A, "end": A}, "price": None},
            ]
        },
    }
    invoices, lines = preview_frames([("s1", "c1", preview)])
    assert invoices["tax"].iloc[0] == 300 and invoices["discount"].iloc[0] == 0
    assert invoices["invoice_id"].iloc[0] == "preview:s1@" + pd.Timestamp(A, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")  # fmt: skip
    assert list(lines["price_id"].fillna("-")) == ["seat", "lk_y", "-"]
    assert list(lines["kind"]) == ["recurring", "usage", "one_off"]
    assert lines["unit_amount_decimal"].isna().tolist() == [False, True, True]
    assert lines["line_id"].tolist() == [f"{invoices['invoice_id'].iloc[0]}:{i}" for i in range(3)]


def test_no_previews_gives_empty_typed_frames() -> None:
    invoices, lines = preview_frames([])
    assert invoices.empty and lines.empty
    assert list(invoices.columns) == INVOICES.column_names
    assert str(invoices["total"].dtype) == "int64"


def test_a_preview_without_lines_keeps_its_own_period() -> None:
    empty = {"id": "up_1", "currency": "usd", "subtotal": 0, "total": 0}
    empty |= {"period_start": A, "period_end": B, "lines": {"data": []}}
    invoices, lines = preview_frames([("s", "c", empty)])
    assert lines.empty
    assert invoices["period_start"].iloc[0] == pd.Timestamp(A, unit="s", tz="UTC")
