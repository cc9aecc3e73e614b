"""The engine against the numbers in Stripe's own documentation.

Sources (quoted in each test):
- docs.stripe.com/subscriptions/pricing-models/tiered-pricing (Typographic fonts)
- docs.stripe.com/billing/subscriptions/usage-based/transform-quantities (car rental)
- stripe.com/docs/billing/subscriptions/quantity-transformation (per 5 users)
- stripe.com/docs/billing/subscriptions/prorations (10 USD -> 20 USD halfway)
- docs.stripe.com/currencies (zero-decimal currencies)
- the Price API's unit_amount_decimal ("a decimal value in cents ... at most 12 decimal places")
"""

from __future__ import annotations

import pandas as pd
import pytest
from pricing_builders import catalog, item, seat_price, snapshot, subscription, usage

from shadowbill.pricing.engine import price

END = "2026-01-01T00:00:00Z"

FONT_TIERS = [
    {"up_to": 5, "unit_amount": 700},  # 1-5 fonts: 7 USD
    {"up_to": 10, "unit_amount": 650},  # 6-10: 6.5 USD
    {"up_to": "inf", "unit_amount": 600},  # 11+: 6 USD
]


def _one_month(prices: list[dict], items: list[dict], usage_rows: list[dict] | None = None):
    snap = snapshot(
        subscriptions=[subscription()], subscription_items=items, usage=usage_rows or []
    )
    return price(snap, catalog(prices), end="2025-02-01T00:00:00Z")


def _font_price(mode: str) -> dict:
    return {
        "id": "fonts",
        "product": "fonts",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": mode,
        "tiers": FONT_TIERS,
        "recurring": {"interval": "month"},
    }


@pytest.mark.parametrize(
    ("fonts", "total"),
    # "| 1 | 7 USD | 7 USD | 5 | 7 USD | 35 USD | 6 | 6.5 USD | 39 USD |
    #  | 20 | 6 USD | 120 USD | 25 | 6 USD | 150 USD |"
    [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)],
)
def test_volume_pricing_table(fonts: int, total: int) -> None:
    result = _one_month([_font_price("volume")], [item("i", "fonts", fonts)])
    assert result.invoices["subtotal"].tolist() == [total]


def test_graduated_five_fonts_cost_the_same_as_volume() -> None:
    # "5 fonts result in the same charge as volume-based pricing: 35 USD total at 7 USD per font"
    result = _one_month([_font_price("graduated")], [item("i", "fonts", 5)])
    assert result.invoices["subtotal"].tolist() == [3500]


def test_graduated_charges_each_tier_at_its_own_rate() -> None:
    # "The quantity is multiplied by the amount for each tier and the totals for each tier
    #  are summed together": 25 fonts = 5 x 7 + 5 x 6.5 + 15 x 6 USD
    result = _one_month([_font_price("graduated")], [item("i", "fonts", 25)])
    assert result.invoices["subtotal"].tolist() == [5 * 700 + 5 * 650 + 15 * 600]
    assert result.lines["explain"].tolist() == [
        "tier 1: 5 x 7.00; tier 2: 5 x 6.50; tier 3: 15 x 6.00"
    ]


def test_transform_quantity_car_rental() -> None:
    # "Charge 10 USD per hour, and round up ... If a customer rents the car for 150 minutes,
    #  that customer is charged 30 USD for 3 hours of rental"
    rental = {
        "id": "rental",
        "product": "car",
        "currency": "usd",
        "unit_amount": 1000,
        "transform_quantity": {"divide_by": 60, "round": "up"},
        "recurring": {"interval": "month", "usage_type": "metered", "meter": "minutes"},
    }
    result = _one_month(
        [rental], [item("i", "rental")], [usage("minutes", "2025-01-01T00:00:00Z", 150)]
    )
    line = result.lines.iloc[0]
    assert (line["amount"], line["quantity"]) == (3000, 150)
    assert line["explain"] == "150 -> 3 x 60 (rounded up) x 10.00"


@pytest.mark.parametrize(
    ("users", "total"),
    # "Number of Users ... Total: 1 $10, 3 $10, 5 $10, 6 $20, 7 $20"
    [(1, 1000), (3, 1000), (5, 1000), (6, 2000), (7, 2000)],
)
def test_transform_quantity_per_five_users(users: int, total: int) -> None:
    suite = seat_price("suite", 1000, transform_quantity={"divide_by": 5, "round": "up"})
    result = _one_month([suite], [item("i", "suite", users)])
    assert result.invoices["subtotal"].tolist() == [total]


def test_proration_halfway_from_10_to_20_usd() -> None:
    # "if a customer upgrades from a 10 USD per month subscription to a 20 USD option ...
    #  halfway through the billing period, the customer is billed an additional 5 USD:
    #  -5 USD for unused time on the initial price, and 10 USD for the remaining time"
    prices = [
        seat_price("basic", 1000, nickname="Basic"),
        seat_price("plus", 2000, nickname="Plus"),
    ]
    halfway = "2025-04-16T00:00:00Z"  # April has 30 days: the 16th at midnight is halfway
    snap = snapshot(
        subscriptions=[subscription(started_at="2025-04-01T00:00:00Z")],
        subscription_items=[
            item("i", "basic", 1, "2025-04-01T00:00:00Z", halfway),
            item("i", "plus", 1, halfway),
        ],
    )
    result = price(snap, catalog(prices), end="2025-05-01T00:00:00Z")
    prorations = result.lines[result.lines["kind"] == "proration"]
    assert prorations["amount"].tolist() == [-500, 1000]
    assert prorations["description"].tolist() == [
        "Unused time on 1 × Basic after 16 Apr 2025",
        "Remaining time on 1 × Plus after 16 Apr 2025",
    ]
    assert prorations["explain"].iloc[0] == "prorated 15d / 30d of 1 x 10.00"


def test_zero_decimal_currency_amounts_are_yen() -> None:
    # "to charge 500 JPY, provide an amount value of 500"
    plan = seat_price("plan", 1000, currency_options={"jpy": {"unit_amount": 500}})
    snap = snapshot(
        subscriptions=[subscription(currency="JPY")], subscription_items=[item("i", "plan")]
    )
    result = price(snap, catalog([plan]), end="2025-02-01T00:00:00Z")
    assert result.invoices[["currency", "total"]].values.tolist() == [["JPY", 500]]
    assert result.lines["explain"].tolist() == ["1 x 500"]


def test_unit_amount_decimal_below_a_cent_rounds_once_per_line() -> None:
    # unit_amount_decimal: "a decimal value in cents (or local equivalent) with at most 12
    # decimal places": 0.000123456789 cents per call; 1,234,567 calls = 152.41573... cents
    calls = {
        "id": "calls",
        "product": "api",
        "currency": "usd",
        "unit_amount_decimal": "0.000123456789",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": "calls"},
    }
    result = _one_month(
        [calls], [item("i", "calls")], [usage("calls", "2025-01-01T00:00:00Z", 1_234_567)]
    )
    assert result.lines["amount"].tolist() == [152]
    assert result.lines["unit_amount_decimal"].tolist() == ["0.000123456789"]


def test_billing_anchor_on_the_31st_bills_on_the_last_day_then_the_31st_again() -> None:
    snap = snapshot(
        subscriptions=[subscription(started_at="2024-01-31T12:00:00Z")],
        subscription_items=[item("i", "seat", 1, "2024-01-31T12:00:00Z")],
    )
    result = price(snap, catalog([seat_price()]), end="2024-05-01T00:00:00Z")
    starts = result.invoices["period_start"].dt.strftime("%Y-%m-%d %H:%M").tolist()
    assert starts == ["2024-01-31 12:00", "2024-02-29 12:00", "2024-03-31 12:00"]
    assert result.invoices["period_end"].iloc[-1] == pd.Timestamp("2024-04-30T12:00:00Z")


FLAT_TIERS = [
    {"up_to": 5, "unit_amount": 0, "flat_amount": 1000},  # up to 5 units: a flat 10 USD
    {"up_to": "inf", "unit_amount": 200, "flat_amount": 500},
]


@pytest.mark.parametrize("mode", ["volume", "graduated"])
def test_tiered_quantity_zero_bills_the_first_tiers_flat_amount(mode: str) -> None:
    # docs.stripe.com/products-prices/pricing-models (tiered pricing): a quantity of 0 is
    # billed the flat amount of the first tier, in volume and graduated modes alike
    body = {**_font_price(mode), "id": "flat", "tiers": FLAT_TIERS}
    result = _one_month([body], [item("i", "flat", 0)])
    assert result.lines[["quantity", "amount"]].values.tolist() == [[0, 1000]]
    assert result.lines["explain"].tolist() == [
        ("volume " if mode == "volume" else "") + "tier 1: 0 x 0.00 + flat 10.00"
    ]


@pytest.mark.parametrize("mode", ["volume", "graduated"])
def test_metered_tiered_price_without_usage_bills_the_first_tiers_flat_amount(mode: str) -> None:
    # the same rule for usage: a period with no usage has quantity 0
    body = {
        **_font_price(mode),
        "id": "flat",
        "tiers": FLAT_TIERS,
        "recurring": {"interval": "month", "usage_type": "metered", "meter": "calls"},
    }
    result = _one_month([body], [item("i", "flat")])
    assert result.lines[["kind", "quantity", "amount"]].values.tolist() == [["usage", 0, 1000]]


def test_per_unit_quantity_zero_still_bills_nothing() -> None:
    result = _one_month([seat_price("p", 1000)], [item("i", "p", 0)])
    assert result.invoices.empty


def _upgrade_with_discount(coupon: dict, billing_mode: str = "flexible"):
    prices = [seat_price("basic", 1000), seat_price("plus", 2000)]
    halfway = "2025-04-16T00:00:00Z"
    snap = snapshot(
        subscriptions=[subscription(started_at="2025-04-01T00:00:00Z")],
        subscription_items=[
            item("i", "basic", 1, "2025-04-01T00:00:00Z", halfway),
            item("i", "plus", 1, halfway),
        ],
        discounts=[
            {"discount_id": "d", "subscription_id": "s1", "starts_at": "2025-04-01T00:00:00Z"}
            | coupon
        ],
    )
    cat = catalog(prices, billing_mode=billing_mode)
    return price(snap, cat, end="2025-05-01T00:00:00Z")


def test_prorations_carry_the_percent_discount_in_force_and_are_not_discounted_again() -> None:
    # docs.stripe.com/billing/subscriptions/coupons: proration items are not discountable;
    # the subscription's discount is built into the proration amount (flexible billing
    # mode, proration_discounts: included). 10 -> 20 USD halfway with 50% off: -2.50, +5.00
    result = _upgrade_with_discount({"percent_off": "50"})
    lines = result.lines
    assert lines.loc[lines["kind"] == "proration", "amount"].tolist() == [-250, 500]
    # the invoice discount takes 50% of the recurring 10 USD only: 5.00, not 6.25
    assert lines.loc[lines["kind"] == "discount", "amount"].tolist() == [-500]


def test_amount_off_coupon_does_not_apply_to_prorations_again() -> None:
    # an invoice-level amount_off coupon discounts the discountable lines only: the
    # recurring 10 USD (capped at it), never the +10 USD proration debit
    result = _upgrade_with_discount({"amount_off": 1500})
    inv = result.invoices.iloc[0]
    assert (int(inv["subtotal"]), int(inv["discount"])) == (1500, 1000)
