"""Properties of the pricing building blocks that must hold for any input."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pricing_builders import catalog, item, seat_price, snapshot, subscription

from shadowbill.money import Rounding, div_round
from shadowbill.pricing.catalog import Proration
from shadowbill.pricing.engine import price
from shadowbill.pricing.periods import DAY_US
from shadowbill.pricing.price_table import build_table
from shadowbill.pricing.proration import fraction, prorate
from shadowbill.pricing.tiers import exact_charge

quantities = st.lists(st.integers(1, 10**7), min_size=1, max_size=30)
unit_text = st.decimals(0, 10_000, places=3).map(str)


def _single_tier(mode: str, unit: str, flat: int) -> dict:
    return {
        "id": mode,
        "product": "p",
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": mode,
        "tiers": [{"up_to": "inf", "unit_amount_decimal": unit, "flat_amount": flat}],
        "recurring": {"interval": "month"},
    }


@given(quantities, unit_text, st.integers(0, 10**6))
def test_graduated_equals_volume_for_a_single_tier(q: list[int], unit: str, flat: int) -> None:
    cat = catalog([_single_tier("graduated", unit, flat), _single_tier("volume", unit, flat)])
    table = build_table([cat.price_terms("graduated", "usd"), cat.price_terms("volume", "usd")])
    qty = np.array(q, dtype=np.int64)
    graduated = exact_charge(table, np.zeros(len(q), dtype=np.int64), qty)
    volume = exact_charge(table, np.ones(len(q), dtype=np.int64), qty)
    assert graduated.tolist() == volume.tolist()
    assert graduated.dtype == np.int64


moments = st.integers(0, 3 * 10**15)  # microseconds since 1970, up to 2065


@given(moments, st.integers(DAY_US, 400 * DAY_US), st.sampled_from(list(Proration)[:2]))
def test_fraction_is_zero_at_the_end_and_whole_at_the_start(
    start: int, length: int, method: Proration
) -> None:
    ps, pe = np.array([start]), np.array([start + length])
    num, den = fraction(method, pe, ps, pe)
    assert num.tolist() == [0]
    num, den = fraction(method, ps, ps, pe)
    assert num.tolist() == den.tolist()


@given(
    st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=20),
    st.sampled_from([1, 100, 10**6]),
    st.sampled_from(list(Rounding)),
)
def test_zero_length_proration_is_zero_and_full_period_is_the_full_price(
    exact: list[int], factor: int, mode: Rounding
) -> None:
    e = np.array(exact, dtype=np.int64)
    n = len(e)
    zero = prorate(e, factor, np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64), mode)
    assert zero.tolist() == [0] * n
    full = prorate(e, factor, np.full(n, 7, dtype=np.int64), np.full(n, 7, dtype=np.int64), mode)
    magnitude = div_round(np.abs(e), factor, mode)
    assert full.tolist() == np.where(e < 0, -magnitude, magnitude).tolist()


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(0, 500), min_size=1, max_size=4),
    st.decimals(0, 100, places=2).map(str),
    st.sampled_from(["per_line", "per_invoice"]),
)
def test_percent_discounts_never_exceed_the_amount(
    seats: list[int], percent: str, rounding: str
) -> None:
    prices = [seat_price(f"p{i}", 333 + i, product=f"x{i}") for i in range(len(seats))]
    snap = snapshot(
        subscriptions=[subscription()],
        subscription_items=[item(f"i{i}", f"p{i}", q) for i, q in enumerate(seats)],
        discounts=[
            {
                "discount_id": "d",
                "subscription_id": "s1",
                "percent_off": percent,
                "starts_at": "2025-01-01T00:00:00Z",
            }
        ],
    )
    cat = catalog(prices, engine={"discount_rounding": rounding})
    result = price(snap, cat, end="2025-02-01T00:00:00Z")
    inv = result.invoices
    assert (inv["discount"] >= 0).all()
    assert (inv["discount"] <= inv["subtotal"]).all()
    assert (inv["total"] == inv["subtotal"] - inv["discount"] + inv["tax"]).all()
