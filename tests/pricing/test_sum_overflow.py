"""Sums in the pricing engine never wrap around int64: an overflow is an error naming the
invoice, and every sum that fits is exact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pricing_builders import catalog, item, seat_price, snapshot, subscription

from shadowbill.errors import PricingError
from shadowbill.pricing.engine import price
from shadowbill.pricing.joins import SumOverflow, checked_add, sum_by

INT64 = st.integers(-(2**63), 2**63 - 1)
LO, HI = -(2**63), 2**63 - 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.one_of(INT64, st.integers(-(2**62), 2**62))),
        max_size=12,
    )
)
def test_sum_by_is_exact_or_names_the_groups_that_overflow(rows: list[tuple[int, int]]) -> None:
    groups = np.array([g for g, _ in rows], dtype=np.int64)
    values = np.array([v for _, v in rows], dtype=np.int64)
    exact = [sum(v for g, v in rows if g == k) for k in range(5)]
    overflowing = [k for k in range(5) if not LO <= exact[k] <= HI]
    if overflowing:
        with pytest.raises(SumOverflow) as caught:
            sum_by(groups, values, 5)
        assert caught.value.groups.tolist() == overflowing
    else:
        assert sum_by(groups, values, 5).tolist() == exact


@given(st.lists(st.tuples(INT64, INT64), min_size=1, max_size=8))
def test_checked_add_is_exact_or_names_the_positions(pairs: list[tuple[int, int]]) -> None:
    a = np.array([x for x, _ in pairs], dtype=np.int64)
    b = np.array([y for _, y in pairs], dtype=np.int64)
    bad = [i for i, (x, y) in enumerate(pairs) if not LO <= x + y <= HI]
    if bad:
        with pytest.raises(SumOverflow) as caught:
            checked_add(a, b)
        assert caught.value.groups.tolist() == bad
    else:
        assert checked_add(a, b).tolist() == [x + y for x, y in pairs]


def test_two_items_whose_subtotal_leaves_int64_are_an_error_naming_the_invoice() -> None:
    quantity = 4_700_000  # x 10^12 per unit: 4.7e18 each fits, 9.4e18 for both does not
    prices = [seat_price("a", 10**12, product="a"), seat_price("b", 10**12, product="b")]
    snap = snapshot(
        subscriptions=[subscription()],
        subscription_items=[item("i1", "a", quantity), item("i2", "b", quantity)],
    )
    with pytest.raises(PricingError) as caught:
        price(snap, catalog(prices), end="2025-02-01T00:00:00Z")
    message = str(caught.value)
    assert "s1@2025-01-01T00:00:00Z" in message and "64-bit" in message and "\n" not in message


def test_the_largest_subtotal_that_fits_is_priced_exactly() -> None:
    quantity = 4_600_000  # 2 x 4.6e18 = 9.2e18 < 2^63 - 1
    prices = [seat_price("a", 10**12, product="a"), seat_price("b", 10**12, product="b")]
    snap = snapshot(
        subscriptions=[subscription()],
        subscription_items=[item("i1", "a", quantity), item("i2", "b", quantity)],
    )
    invoices = price(snap, catalog(prices), end="2025-02-01T00:00:00Z").invoices
    assert invoices["subtotal"].tolist() == [2 * quantity * 10**12]
    assert invoices["total"].tolist() == [2 * quantity * 10**12]
