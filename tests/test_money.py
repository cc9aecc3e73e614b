"""Money: exact parsing, formatting and named rounding, checked by property."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowbill.errors import MoneyError, UnknownCurrencyError
from shadowbill.money import (
    Money,
    Rounding,
    div_round,
    exponent,
    format_minor,
    mul_div_round,
    parse_major,
    round_decimal,
)


def test_exponents_follow_iso_4217() -> None:
    assert exponent("JPY") == 0
    assert exponent("krw") == 0
    assert exponent("USD") == 2
    assert exponent("EUR") == 2
    assert exponent("KWD") == 3
    assert exponent("BHD") == 3
    assert exponent("JOD") == 3


def test_unknown_currency_is_named() -> None:
    with pytest.raises(UnknownCurrencyError, match="'XYZ'"):
        exponent("XYZ")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("39.00", "USD", 3900),
        ("1,234.50", "USD", 123450),
        ("-0.01", "EUR", -1),
        ("5900", "JPY", 5900),
        ("12.345", "KWD", 12345),
        (".5", "USD", 50),
        ("7", "USD", 700),
    ],
)
def test_parse_major(text: str, currency: str, minor: int) -> None:
    assert parse_major(text, currency) == minor


@pytest.mark.parametrize("text", ["", "abc", "1,23.00", "1.2.3", "--1", "1e5", "nan"])
def test_parse_major_rejects_garbage(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_major(text, "USD")


def test_too_many_decimals_need_a_named_rounding() -> None:
    with pytest.raises(MoneyError, match="rounding"):
        parse_major("0.005", "USD")
    assert parse_major("0.005", "USD", Rounding.HALF_UP) == 1
    assert parse_major("0.005", "USD", Rounding.HALF_EVEN) == 0
    assert parse_major("0.5", "JPY", "half_up") == 1


def test_format_minor() -> None:
    assert format_minor(123450, "USD") == "1,234.50 USD"
    assert format_minor(-5, "USD") == "-0.05 USD"
    assert format_minor(5900, "JPY") == "5,900 JPY"
    assert format_minor(12345, "KWD") == "12.345 KWD"


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(MoneyError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1, "USD") + Money(1, "EUR")
    assert str(Money(100, "usd") - Money(1, "USD")) == "0.99 USD"


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(["USD", "JPY", "KWD"]))
def test_format_then_parse_round_trips(amount: int, currency: str) -> None:
    text = format_minor(amount, currency, with_code=False)
    assert parse_major(text, currency) == amount


@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from(list(Rounding)),
)
def test_div_round_equals_decimal_rounding(numer: int, denom: int, mode: Rounding) -> None:
    expected = round_decimal(Decimal(numer) / Decimal(denom), mode)
    assert int(div_round(np.array([numer]), np.array([denom]), mode)[0]) == expected


@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=1, max_value=10**8),
    st.sampled_from(list(Rounding)),
)
def test_mul_div_round_is_exact_even_past_int64(a: int, b: int, d: int, mode: Rounding) -> None:
    expected = round_decimal(Decimal(a * b) / Decimal(d), mode)
    if abs(expected) >= 2**63:
        return
    got = mul_div_round(np.array([a]), np.array([b]), np.array([d]), mode)
    assert got.dtype == np.int64
    assert int(got[0]) == expected


def test_half_up_is_away_from_zero_and_half_even_is_bankers() -> None:
    n = np.array([5, 15, 25, -5, -15])
    assert div_round(n, 10, "half_up").tolist() == [1, 2, 3, -1, -2]
    assert div_round(n, 10, "half_even").tolist() == [0, 2, 2, 0, -2]
