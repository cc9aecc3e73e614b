"""The legacy engine's text columns: major-unit money and naive timestamps, exact both ways."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.demo.legacy_text import iso_naive, major_units
from shadowbill.demo.price_book import CURRENCIES
from shadowbill.money import exponent, parse_major

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=-(10**15), max_value=10**15),
            st.integers(min_value=0, max_value=len(CURRENCIES) - 1),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_major_units_round_trip(rows: list[tuple[int, int]]) -> None:
    amounts = np.array([a for a, _ in rows], dtype=np.int64)
    cur = np.array([c for _, c in rows], dtype=np.int64)
    for (amount, c), text in zip(rows, major_units(amounts, cur).to_pylist(), strict=True):
        code = CURRENCIES[c]
        assert parse_major(text, code) == amount
        decimals = len(text.partition(".")[2])
        assert decimals == exponent(code)
        assert Decimal(text) == Decimal(amount).scaleb(-exponent(code))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.just(-1),
            st.integers(min_value=0, max_value=int(dt.datetime(2040, 1, 1).timestamp())),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_iso_naive_is_utc_wall_time(seconds: list[int]) -> None:
    got = iso_naive(np.array(seconds, dtype=np.int64)).to_pylist()
    for s, text in zip(seconds, got, strict=True):
        if s < 0:
            assert text is None
        else:
            assert text == dt.datetime.fromtimestamp(s, dt.UTC).replace(tzinfo=None).isoformat(" ")
