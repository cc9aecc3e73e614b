"""The rules of docs/billing-model.md, one at a time, on small hand-made subscriptions."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from pricing_builders import catalog, item, seat_price, snapshot, subscription, usage

from shadowbill.pricing.engine import PricedInvoices, price

JAN = "2025-01-01T00:00:00Z"
METERED = {
    "id": "calls",
    "product": "api",
    "currency": "usd",
    "unit_amount_decimal": "0.5",
    "recurring": {"interval": "month", "usage_type": "metered", "meter": "calls"},
}


def run(
    items: list[dict[str, Any]],
    *,
    prices: list[dict[str, Any]] | None = None,
    end: str = "2025-04-01T00:00:00Z",
    start: str | None = None,
    sub: dict[str, Any] | None = None,
    usage_rows: list[dict[str, Any]] | None = None,
    discounts: list[dict[str, Any]] | None = None,
    coupons: list[dict[str, Any]] | None = None,
    tax_rates: list[dict[str, Any]] | None = None,
    engine: dict[str, str] | None = None,
    customers: list[dict[str, Any]] | None = None,
) -> PricedInvoices:
    """Price one subscription (default: monthly from 1 Jan 2025, USD, US)."""
    tables: dict[str, list[dict[str, Any]]] = {
        "subscriptions": [sub or subscription()],
        "subscription_items": items,
        "usage": usage_rows or [],
        "discounts": discounts or [],
    }
    if customers is not None:
        tables["customers"] = customers
    cat = catalog(
        prices or [seat_price(), METERED],
        coupons=coupons,
        tax_rates=tax_rates,
        engine=engine,
    )
    return price(snapshot(**tables), cat, start=start, end=end)


def starts(result: PricedInvoices) -> list[str]:
    return result.invoices["period_start"].dt.strftime("%Y-%m-%d").tolist()


def amounts(result: PricedInvoices, kind: str) -> list[int]:
    return [int(a) for a in result.lines.loc[result.lines["kind"] == kind, "amount"]]


# ------------------------------------------------------------------ periods ----


def test_trial_is_not_invoiced_and_anchors_the_periods() -> None:
    sub = subscription(trial_end="2025-01-15T00:00:00Z")
    result = run([item("i", "seat", 2)], sub=sub)
    assert starts(result) == ["2025-01-15", "2025-02-15"]


def test_interval_count_three_months() -> None:
    sub = subscription(interval_count=3)
    result = run([item("i", "seat", 1)], sub=sub, end="2025-10-01T00:00:00Z")
    assert starts(result) == ["2025-01-01", "2025-04-01", "2025-07-01"]


def test_cancellation_cuts_the_last_period_bills_it_in_full_and_usage_up_to_it() -> None:
    canceled = "2025-02-10T08:00:00Z"
    sub = subscription(canceled_at=canceled)
    result = run(
        [item("i", "seat", 3, JAN, canceled), item("m", "calls", 1, JAN, canceled)],
        sub=sub,
        usage_rows=[usage("calls", "2025-02-01T00:00:00Z", 40)],
    )
    assert starts(result) == ["2025-01-01", "2025-02-01"]
    last = result.invoices.iloc[-1]
    assert last["period_end"] == pd.Timestamp(canceled)  # the period is cut short
    assert amounts(result, "proration") == []  # prorate=false: no credit for the rest
    assert amounts(result, "recurring") == [3000, 3000]
    assert amounts(result, "usage") == [20]


def test_start_and_end_select_whole_periods() -> None:
    result = run([item("i", "seat")], start="2025-02-01", end="2025-03-15T00:00:00Z")
    assert starts(result) == ["2025-02-01"]


def test_quantity_zero_gives_no_line_and_no_lines_no_invoice() -> None:
    result = run([item("i", "seat", 0)])
    assert result.invoices.empty and result.lines.empty


# ---------------------------------------------------------------- prorations ----

CHANGE = [
    item("i", "seat", 10, JAN, "2025-01-11T12:00:00Z"),
    item("i", "seat", 12, "2025-01-11T12:00:00Z"),
]


def test_seconds_proration_credits_old_and_debits_new() -> None:
    result = run(CHANGE, end="2025-02-01T00:00:00Z")
    # 20.5 of 31 days left: 100.00 x 20.5/31 = 66.129.. -> 66.13; 120.00 x 20.5/31 = 79.354..
    assert amounts(result, "proration") == [-6613, 7935]
    explain = result.lines.loc[result.lines["kind"] == "proration", "explain"].tolist()
    assert explain == [
        "prorated 20d 12h / 31d of 10 x 10.00",
        "prorated 20d 12h / 31d of 12 x 10.00",
    ]


def test_days_proration_counts_whole_utc_days() -> None:
    result = run(CHANGE, end="2025-02-01T00:00:00Z", engine={"proration": "days"})
    # 21 of 31 days (from the 11th to the 1st): 100.00 x 21/31 = 67.74, 120.00 x 21/31 = 81.29
    assert amounts(result, "proration") == [-6774, 8129]
    assert result.lines["explain"].iloc[1] == "prorated 21 / 31 days of 10 x 10.00"


def test_no_proration_engine() -> None:
    result = run(CHANGE, end="2025-02-01T00:00:00Z", engine={"proration": "none"})
    assert amounts(result, "proration") == []


def test_item_added_mid_period_only_debits() -> None:
    result = run(
        [item("i", "seat", 1), item("a", "seat", 1, "2025-01-16T00:00:00Z")],
        end="2025-02-01T00:00:00Z",
    )
    assert amounts(result, "proration") == [516]  # 10.00 x 16/31


# ----------------------------------------------------------------- discounts ----

LOYAL = {"id": "LOYAL20", "percent_off": "20", "duration": "repeating", "duration_in_months": 2}


def test_repeating_coupon_runs_its_months_from_starts_at() -> None:
    result = run(
        [item("i", "seat", 10)],
        coupons=[LOYAL],
        discounts=[
            {"discount_id": "d", "subscription_id": "s1", "coupon_id": "LOYAL20", "starts_at": JAN}
        ],
    )
    assert amounts(result, "discount") == [-2000, -2000]
    assert result.invoices["discount"].tolist() == [2000, 2000, 0]
    assert result.lines.loc[result.lines["kind"] == "discount", "explain"].tolist() == [
        "20% off LOYAL20 (month 1 of 2) on 100.00",
        "20% off LOYAL20 (month 2 of 2) on 100.00",
    ]


def test_once_coupon_hits_the_first_invoice_from_its_start_only() -> None:
    welcome = {"id": "W", "amount_off": 500, "currency": "usd", "duration": "once"}
    result = run(
        [item("i", "seat", 1)],
        coupons=[welcome],
        discounts=[
            {
                "discount_id": "d",
                "subscription_id": "s1",
                "coupon_id": "W",
                "starts_at": "2025-01-20T00:00:00Z",
            }
        ],
    )
    assert result.invoices["discount"].tolist() == [0, 500, 0]


def test_coupon_restricted_to_products_and_amount_capped() -> None:
    coupon = {
        "id": "API",
        "amount_off": 5000,
        "currency": "usd",
        "duration": "forever",
        "applies_to": {"products": ["api"]},
    }
    result = run(
        [item("i", "seat", 1), item("m", "calls")],
        coupons=[coupon],
        usage_rows=[usage("calls", JAN, 100)],
        discounts=[
            {"discount_id": "d", "subscription_id": "s1", "coupon_id": "API", "starts_at": JAN}
        ],
        end="2025-02-01T00:00:00Z",
    )
    assert amounts(result, "discount") == [-50]  # only the 0.50 of calls, not the seat
    assert result.lines["explain"].iloc[-1] == "50.00 off API on 0.50, capped at the amount"


def test_line_level_discount_first_then_subscription_level_on_what_is_left() -> None:
    result = run(
        [item("i", "seat", 10), item("x", "seat", 1)],
        discounts=[
            {"discount_id": "sub", "subscription_id": "s1", "percent_off": "10", "starts_at": JAN},
            {
                "discount_id": "line",
                "subscription_id": "s1",
                "item_id": "i",
                "amount_off": 2000,
                "starts_at": JAN,
            },
        ],
        end="2025-02-01T00:00:00Z",
    )
    # seats 100.00 - 20.00 = 80.00; plus 10.00 = 90.00; 10% of that = 9.00
    assert amounts(result, "discount") == [-2000, -900]
    assert result.invoices["total"].tolist() == [8100]


@pytest.mark.parametrize(("rounding", "discount"), [("per_line", 9), ("per_invoice", 8)])
def test_discount_rounding_per_line_or_per_invoice(rounding: str, discount: int) -> None:
    tiny = [seat_price(f"p{i}", 5, product=f"x{i}") for i in range(3)]
    result = run(
        [item(f"i{i}", f"p{i}") for i in range(3)],
        prices=tiny,
        discounts=[
            {"discount_id": "d", "subscription_id": "s1", "percent_off": "50", "starts_at": JAN}
        ],
        engine={"discount_rounding": rounding},
        end="2025-02-01T00:00:00Z",
    )
    # three lines of 0.05 at 50%: 3 x round(2.5) = 9 cents, or round(7.5) = 8 cents
    assert result.invoices["discount"].tolist() == [discount]


# ---------------------------------------------------------------------- tax ----

VAT = {"id": "vat", "display_name": "VAT", "percentage": "20", "country": "GB"}


def _tax_run(rate: dict[str, Any], *, exempt: bool = False, rounding: str = "per_line"):
    tiny = [seat_price(f"p{i}", 3, product=f"x{i}") for i in range(3)]
    sub = subscription(country="GB")
    customers = [
        {
            "customer_id": sub["customer_id"],
            "name": "n",
            "country": "GB",
            "currency": "USD",
            "segment": "sales",
            "created_at": JAN,
            "tax_exempt": exempt,
        }
    ]
    return run(
        [item(f"i{i}", f"p{i}") for i in range(3)],
        prices=tiny,
        sub=sub,
        customers=customers,
        tax_rates=[rate],
        engine={"tax_rounding": rounding},
        end="2025-02-01T00:00:00Z",
    )


@pytest.mark.parametrize(("rounding", "tax"), [("per_line", 3), ("per_invoice", 2)])
def test_exclusive_tax_rounding_per_line_or_per_invoice(rounding: str, tax: int) -> None:
    # three lines of 3 cents at 20%: 3 x round(0.6) = 3, or round(1.8) = 2
    result = _tax_run(VAT, rounding=rounding)
    assert result.invoices[["subtotal", "tax", "total"]].values.tolist() == [[9, tax, 9 + tax]]
    assert result.lines["explain"].iloc[-1] == "20% VAT on 0.09"


def test_inclusive_tax_is_reported_not_added() -> None:
    # docs.stripe.com/api/invoices/object: tax is the sum of every tax amount (inclusive
    # included); the total adds only exclusive tax
    result = _tax_run({**VAT, "inclusive": True}, rounding="per_invoice")
    assert result.invoices[["tax", "total"]].values.tolist() == [[2, 9]]
    tax_line = result.lines.iloc[-1]
    assert tax_line["amount"] == 0
    assert tax_line["explain"] == "includes 0.02 VAT (20%) in 0.09"  # 9 x 20/120 = 1.5 -> 2


def test_tax_exempt_customer_gets_no_tax_line() -> None:
    result = _tax_run(VAT, exempt=True)
    assert "tax" not in set(result.lines["kind"])


# --------------------------------------------------------- currencies, errors ----


def test_kwd_has_three_decimals_through_currency_options() -> None:
    plan = seat_price("plan", 1000, currency_options={"kwd": {"unit_amount_decimal": "3050.5"}})
    result = run(
        [item("i", "plan", 3)],
        prices=[plan],
        sub=subscription(currency="KWD"),
        end="2025-02-01T00:00:00Z",
    )
    assert result.lines[["amount", "explain"]].values.tolist() == [[9152, "3 x 3.0505"]]


def test_half_even_rounds_ties_to_even() -> None:
    half = {**METERED, "unit_amount_decimal": "0.5"}
    result = run(
        [item("m", "calls")],
        prices=[half],
        usage_rows=[usage("calls", JAN, 5), usage("calls", "2025-02-01T00:00:00Z", 3)],
        engine={"rounding": "half_even"},
        end="2025-03-01T00:00:00Z",
    )
    assert amounts(result, "usage") == [2, 2]  # 2.5 -> 2, 1.5 -> 2


def test_unpriceable_subscriptions_are_listed_and_skipped() -> None:
    snap = snapshot(
        subscriptions=[
            subscription("ok"),
            subscription("gone"),
            subscription("chf", currency="CHF"),
        ],
        subscription_items=[
            item("a", "seat", sid="ok"),
            item("b", "retired", sid="gone"),
            item("c", "seat", sid="chf"),
        ],
    )
    result = price(snap, catalog([seat_price()]), end="2025-02-01T00:00:00Z")
    assert result.invoices["subscription_id"].tolist() == ["ok"]
    errors = result.errors.set_index("subscription_id")
    assert sorted(errors.index) == ["chf", "gone"]
    assert "'retired' is not in catalog" in errors.loc["gone", "reason"]
    assert "no amount in chf" in errors.loc["chf", "reason"]


def test_output_has_the_canonical_columns_and_stable_ids() -> None:
    result = run([item("i", "seat", 2)], end="2025-02-01T00:00:00Z")
    line = result.lines.iloc[0]
    assert line["line_id"] == "s1@2025-01-01T00:00:00Z/recurring/i"
    assert line["invoice_id"] == line["invoice_key"] == "s1@2025-01-01T00:00:00Z"
    assert (line["description"], line["explain"]) == ("2 × Seat", "2 x 10.00")
    assert result.invoices["status"].tolist() == ["paid"]
    assert result.invoices["issued_at"].tolist() == result.invoices["period_end"].tolist()
