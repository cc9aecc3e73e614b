"""Calendar arithmetic on epoch seconds, vectorized: months added to an anchor, UTC days.

Billing periods follow docs/billing-model.md: months are added to the anchor (never
chained), the day is clamped to the month's length and the time of day is kept.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
DAY = 86_400


def epoch(moment: dt.date | dt.datetime) -> int:
    """Seconds since 1970 of a date (UTC midnight) or an aware/naive-UTC datetime."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def add_months(ts: npt.ArrayLike, months: npt.ArrayLike) -> I64:
    """``ts + months`` calendar months: day clamped to the target month, time of day kept."""
    t = np.asarray(ts, dtype=np.int64)
    days = t // DAY
    tod = t - days * DAY
    d64 = days.astype("datetime64[D]")
    month = d64.astype("datetime64[M]")
    dom = (d64 - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.asarray(months, dtype=np.int64).astype("timedelta64[M]")
    first = target.astype("datetime64[D]")
    length = ((target + np.timedelta64(1, "M")).astype("datetime64[D]") - first).astype(np.int64)
    day = first + np.minimum(dom, length - 1).astype("timedelta64[D]")
    return np.asarray(day.astype(np.int64) * DAY + tod, dtype=np.int64)


def month_index(ts: npt.ArrayLike) -> I64:
    """Months since January 1970 of each timestamp (UTC)."""
    days = np.asarray(ts, dtype=np.int64) // DAY
    return np.asarray(days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64))


def utc_day(ts: npt.ArrayLike) -> I64:
    """Whole UTC days since 1970 of each timestamp (the timestamp's UTC date)."""
    return np.asarray(np.asarray(ts, dtype=np.int64) // DAY, dtype=np.int64)


def first_boundary_at_or_after(
    anchor: npt.ArrayLike, every: npt.ArrayLike, moment: int
) -> tuple[I64, I64]:
    """The first period start ``anchor + k*every`` months that is >= ``moment``: (k, time)."""
    a = np.asarray(anchor, dtype=np.int64)
    n = np.asarray(every, dtype=np.int64)
    gap = month_index(np.full(a.shape, moment)) - month_index(a)
    k = np.maximum(0, gap // n - 1)
    t = add_months(a, k * n)
    for _ in range(3):  # at most two steps forward from the estimate
        late = t < moment
        k = np.where(late, k + 1, k)
        t = np.where(late, add_months(a, k * n), t)
    return k, t
