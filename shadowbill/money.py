"""Money as integer minor units plus an ISO 4217 currency; exact rounding, no floats.

Every amount in shadowbill is an ``int`` count of the currency's minor units.
Prices below one minor unit are decimal strings (Stripe's ``unit_amount_decimal``).
Rounding happens only through :func:`round_decimal` and :func:`mul_div_round`, and
always names its mode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from shadowbill.errors import MoneyError, UnknownCurrencyError

# ISO 4217 minor-unit exponents. Currencies not listed with 0 or 3 use 2.
_ZERO_DECIMAL = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "UYI",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}
_THREE_DECIMAL = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
_TWO_DECIMAL = {
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHF",
    "CNY",
    "COP",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "UYU",
    "UZS",
    "VES",
    "WST",
    "XCD",
    "YER",
    "ZAR",
    "ZMW",
    "ZWL",
}
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 2 for c in _TWO_DECIMAL},
    **{c: 0 for c in _ZERO_DECIMAL},
    **{c: 3 for c in _THREE_DECIMAL},
}


class Rounding(StrEnum):
    """A named rounding rule: each catalog says which one its engine uses."""

    HALF_UP = "half_up"  # ties away from zero: 0.5 -> 1, -0.5 -> -1
    HALF_EVEN = "half_even"  # banker's rounding: 0.5 -> 0, 1.5 -> 2


_DECIMAL_MODES = {Rounding.HALF_UP: ROUND_HALF_UP, Rounding.HALF_EVEN: ROUND_HALF_EVEN}


def normalize_currency(currency: str) -> str:
    """Return the upper-case ISO 4217 code, or raise naming the bad code."""
    code = str(currency).strip().upper()
    if code not in CURRENCY_EXPONENTS:
        raise UnknownCurrencyError(f"unknown currency {currency!r}: not an ISO 4217 code")
    return code


def is_currency(currency: object) -> bool:
    """True when ``currency`` is a known ISO 4217 code (any case)."""
    return isinstance(currency, str) and currency.strip().upper() in CURRENCY_EXPONENTS


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (JPY 0, USD 2, KWD 3)."""
    return CURRENCY_EXPONENTS[normalize_currency(currency)]


def round_decimal(value: Decimal, mode: Rounding | str) -> int:
    """Round an exact decimal count of minor units to an integer, by the named rule."""
    return int(value.to_integral_value(rounding=_DECIMAL_MODES[Rounding(mode)]))


_MAJOR_RE = re.compile(r"^([+-]?)(\d{1,3}(?:,\d{3})+|\d*)(?:\.(\d*))?$")


def parse_major(
    text: str | int | Decimal, currency: str, rounding: Rounding | str | None = None
) -> int:
    """Parse a major-unit amount ("1,234.50") into minor units, exactly and without float.

    More decimals than the currency has are an error unless a rounding mode is named.
    """
    exp = exponent(currency)
    if isinstance(text, bool):
        raise MoneyError(f"not an amount: {text!r}")
    if isinstance(text, int):
        return text * 10**exp
    raw = str(text).strip().replace("_", "")
    match = _MAJOR_RE.match(raw)
    if not raw or match is None or (match.group(2) == "" and not match.group(3)):
        raise MoneyError(f"not an amount in {currency}: {text!r}")
    value = Decimal(raw.replace(",", ""))
    minor = value.scaleb(exp)
    if minor == minor.to_integral_value():
        return int(minor)
    if rounding is None:
        raise MoneyError(
            f"{text!r} has more decimals than {normalize_currency(currency)} allows ({exp});"
            " name a rounding mode to accept it"
        )
    return round_decimal(minor, rounding)


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """Parse a decimal string of minor units (Stripe's ``unit_amount_decimal``) exactly."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise MoneyError(f"not a decimal amount: {text!r}") from None
    if not value.is_finite():
        raise MoneyError(f"not a finite decimal amount: {text!r}")
    return value


def format_minor(amount: int, currency: str, *, with_code: bool = True) -> str:
    """Render minor units as a major-unit string with thousands separators."""
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(int(amount)), 10**exp)
    body = f"{major:,}" + (f".{minor:0{exp}d}" if exp else "")
    return f"{sign}{body} {normalize_currency(currency)}" if with_code else f"{sign}{body}"


def format_decimal_minor(value: Decimal | str, currency: str) -> str:
    """Render a (possibly sub-minor) decimal of minor units in major units, no trailing zeros."""
    exp = exponent(currency)
    major = parse_decimal(value).scaleb(-exp)
    text = f"{major:,f}"
    if "." in text:
        head, tail = text.split(".")
        tail = tail.rstrip("0")
        tail = tail.ljust(exp, "0")
        text = f"{head}.{tail}" if tail else head
    elif exp:
        text = f"{text}.{'0' * exp}"
    return text


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: integer minor units and the currency they count."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise MoneyError(f"money amounts are integer minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return format_minor(self.amount, self.currency)


# ---------------------------------------------------------------- vectorized ----

IntArray = npt.NDArray[np.int64]
_INT64_SAFE = 2**62


def div_round(numer: npt.ArrayLike, denom: npt.ArrayLike, mode: Rounding | str) -> IntArray:
    """Exact integer division ``numer / denom`` rounded to an integer by the named rule.

    Works element-wise on int64 (or Python-int object) arrays; denominators must be > 0.
    """
    n = np.asarray(numer)
    d = np.asarray(denom)
    if n.dtype != object and d.dtype != object:
        n = n.astype(np.int64, copy=False)
        d = d.astype(np.int64, copy=False)
    if np.any(d <= 0):
        raise MoneyError("rounding by a non-positive denominator")
    neg = n < 0
    a = np.where(neg, -n, n)
    q = a // d
    r = a - q * d
    twice = 2 * r
    if Rounding(mode) is Rounding.HALF_UP:
        up = twice >= d
    else:
        up = (twice > d) | ((twice == d) & (q % 2 == 1))
    q = q + up.astype(np.int64)
    out = np.where(neg, -q, q)
    try:
        return np.asarray(out).astype(np.int64)
    except OverflowError:
        raise MoneyError("an amount exceeds the 64-bit range of minor units") from None


def mul_div_round(
    a: npt.ArrayLike, b: npt.ArrayLike, denom: npt.ArrayLike, mode: Rounding | str
) -> IntArray:
    """Exact ``round(a * b / denom)`` over integer arrays, immune to int64 overflow.

    Rows whose product could overflow int64 are computed with Python integers.
    """
    a_arr = np.asarray(a, dtype=np.int64)
    b_arr = np.asarray(b, dtype=np.int64)
    d_arr = np.broadcast_to(np.asarray(denom, dtype=np.int64), np.broadcast(a_arr, b_arr).shape)
    a_arr, b_arr = np.broadcast_arrays(a_arr, b_arr)
    with np.errstate(over="ignore"):
        risky = (np.abs(a_arr).astype(np.float64) * np.abs(b_arr).astype(np.float64)) >= _INT64_SAFE
    if not risky.any():
        return div_round(a_arr * b_arr, d_arr, mode)
    out = np.empty(a_arr.shape, dtype=np.int64)
    safe = ~risky
    out[safe] = div_round(a_arr[safe] * b_arr[safe], d_arr[safe], mode)
    big = a_arr[risky].astype(object) * b_arr[risky].astype(object)
    out[risky] = div_round(big, d_arr[risky].astype(object), mode)
    return out


def decimal_to_scaled(values: Sequence[object], scale: int) -> IntArray:
    """Turn decimal strings into integers scaled by ``10**scale``, exactly (error if inexact)."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    distinct, where = np.unique(
        np.asarray([str(v) for v in values], dtype=str), return_inverse=True
    )
    scaled = np.empty(len(distinct), dtype=np.int64)
    for i, key in enumerate(distinct):  # per distinct price, not per invoice line
        exact = parse_decimal(str(key)).scaleb(scale)
        if exact != exact.to_integral_value():
            raise MoneyError(f"{key} has more than {scale} decimal places")
        scaled[i] = int(exact)
    return scaled[where.reshape(-1)]
