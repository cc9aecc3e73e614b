"""Text the legacy engine writes: major-unit money, padded ids, dates and line descriptions.

Everything is built column-wise with Arrow compute kernels; lookups (month labels, day
labels, product names, unit prices) are small tables indexed by integer codes.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.demo.billing_calendar import DAY, month_index, utc_day
from shadowbill.demo.price_book import CURRENCIES, PriceBook, major_text
from shadowbill.money import exponent

Text: TypeAlias = pa.Array | pa.ChunkedArray | pa.Scalar | str
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def join(*parts: Text) -> pa.Array:
    """Concatenate text columns and constants element-wise."""
    return pc.binary_join_element_wise(*parts, "")


def ints(values: npt.ArrayLike) -> pa.Array:
    """Integers as decimal text."""
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())


def padded(values: npt.ArrayLike, width: int) -> pa.Array:
    """Non-negative integers as zero-padded text (``7`` -> ``0000007``)."""
    return pc.utf8_lpad(ints(values), width=width, padding="0")


def take(table: list[str] | tuple[str, ...], index: npt.ArrayLike) -> pa.Array:
    """``table[index]`` element-wise, for a small lookup table of strings."""
    return pa.array(list(table), pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))


def major_units(amount: npt.ArrayLike, cur: npt.ArrayLike) -> pa.Array:
    """Minor units as major-unit text per row's currency: "39.00", "-1.50", "5900", "12.000"."""
    amount = np.asarray(amount, dtype=np.int64)
    scale = np.array([10 ** exponent(c) for c in CURRENCIES], dtype=np.int64)
    per_major = scale[np.asarray(cur, dtype=np.int64)]
    magnitude = np.abs(amount)
    whole = ints(magnitude // per_major)
    # the fraction plus one more power of ten always has exp+1 digits: drop the leading "1"
    fraction = pc.utf8_slice_codeunits(ints(magnitude % per_major + per_major), 1)
    text = pc.if_else(pa.array(per_major == 1), whole, join(whole, ".", fraction))
    return pc.if_else(pa.array(amount < 0), join("-", text), text)


def unit_prices(price: npt.ArrayLike, cur: npt.ArrayLike, book: PriceBook) -> pa.Array:
    """Unit prices as major-unit text ("99.00", "0.0075"); null where there is no price."""
    table = [
        major_text(int(book.unit_scaled[p, c]), CURRENCIES[c])
        for p in range(len(book.price_ids))
        for c in range(len(CURRENCIES))
    ]  # per catalog entry
    price = np.asarray(price, dtype=np.int64)
    idx = np.where(price >= 0, price * len(CURRENCIES) + np.asarray(cur, dtype=np.int64), 0)
    return pc.if_else(pa.array(price < 0), pa.scalar(None, pa.string()), take(table, idx))


def _span(values: np.ndarray) -> tuple[int, int]:
    """The smallest and largest value (0, -1 for none): the range a lookup table covers."""
    return (int(values.min()), int(values.max())) if values.size else (0, -1)


def month_labels(ts: npt.ArrayLike) -> pa.Array:
    """ "Mar 2025" for each timestamp's UTC month."""
    m = month_index(ts)
    lo, hi = _span(m)
    table = [f"{_MONTHS[i % 12]} {1970 + i // 12}" for i in range(lo, hi + 1)]  # per month
    return take(table, m - lo)


def _dates(lo: int, hi: int) -> list[dt.date]:
    base = dt.date(1970, 1, 1)
    return [base + dt.timedelta(days=i) for i in range(lo, hi + 1)]  # per day in range


def day_labels(ts: npt.ArrayLike) -> pa.Array:
    """ "12 Mar 2025" for each timestamp's UTC date."""
    d = utc_day(ts)
    lo, hi = _span(d)
    table = [f"{x.day} {_MONTHS[x.month - 1]} {x.year}" for x in _dates(lo, hi)]
    return take(table, d - lo)


_TIMES_OF_DAY = pa.array(
    np.datetime_as_string(np.arange(DAY).astype("datetime64[s]"), unit="s"), pa.string()
)


def iso_naive(ts: npt.ArrayLike) -> pa.Array:
    """Timestamps as naive ISO text in UTC ("2025-03-14 10:22:01"); null where < 0."""
    raw = np.asarray(ts, dtype=np.int64)
    missing = raw < 0
    t = np.where(missing, raw.max(initial=0), raw)  # any valid moment keeps the table small
    d = utc_day(t)
    lo, hi = _span(d)
    dates = take([x.isoformat() for x in _dates(lo, hi)], d - lo)
    times = pc.utf8_slice_codeunits(_TIMES_OF_DAY.take(pa.array(t - d * DAY)), 11)
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), join(dates, " ", times))


def with_nulls(values: npt.ArrayLike) -> pa.Array:
    """Integers with -1 as null (epoch columns and optional quantities)."""
    v = np.asarray(values, dtype=np.int64)
    return pa.array(v, pa.int64(), mask=v < 0)
