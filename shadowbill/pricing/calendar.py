"""Calendar arithmetic on int64 microseconds since the epoch, UTC, for whole arrays.

Months are added the way Stripe bills: day clamped to the target month's length, time of
day kept (Jan 31 + 1 month = Feb 28/29). Shared by the pricing engine and the rollout rules.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

DAY_US = 86_400_000_000


def civil_from_days(days: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """(year, month 1-12, day 1-31) of days since 1970-01-01 (H. Hinnant's algorithm)."""
    z = np.asarray(days, dtype=np.int64) + 719468
    era = np.floor_divide(z, 146097)
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month, day


def days_from_civil(year: IntArray, month: IntArray, day: IntArray) -> IntArray:
    """Days since 1970-01-01 of a (year, month, day) date (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = np.where(month > 2, month - 3, month + 9)
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return np.asarray(era * 146097 + doe - 719468, dtype=np.int64)


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def add_months(ts_us: IntArray, months: IntArray) -> IntArray:
    """Add whole months to timestamps, clamping the day to the target month, keeping the time."""
    ts_us = np.asarray(ts_us, dtype=np.int64)
    days = np.floor_divide(ts_us, DAY_US)
    tod = ts_us - days * DAY_US
    year, month, day = civil_from_days(days)
    index = year * 12 + (month - 1) + np.asarray(months, dtype=np.int64)
    ty = np.floor_divide(index, 12)
    tm = index - ty * 12 + 1
    leap = (ty % 4 == 0) & ((ty % 100 != 0) | (ty % 400 == 0))
    length = _MONTH_DAYS[tm - 1] + ((tm == 2) & leap)
    out_days = days_from_civil(ty, tm, np.minimum(day, length))
    return np.asarray(out_days * DAY_US + tod, dtype=np.int64)


def months_between(start_us: IntArray, end_us: IntArray) -> IntArray:
    """Whole calendar months from ``start`` to ``end`` (as ``add_months`` counts them)."""
    sy, sm, _ = civil_from_days(np.floor_divide(np.asarray(start_us, dtype=np.int64), DAY_US))
    ey, em, _ = civil_from_days(np.floor_divide(np.asarray(end_us, dtype=np.int64), DAY_US))
    guess = (ey * 12 + em) - (sy * 12 + sm)
    # one month less when adding the guess overshoots (end earlier in its month)
    over = add_months(start_us, guess) > end_us
    return np.asarray(guess - over.astype(np.int64), dtype=np.int64)
