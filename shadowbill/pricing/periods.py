"""Billing periods of every subscription at once, as in docs/billing-model.md.

Period *k* is ``[anchor + k*n*interval, anchor + (k+1)*n*interval)`` with months added
to the anchor (not chained), the day clamped to the month's length and the time of day
kept, so an anchor on Jan 31 bills on Feb 28/29 and then on Mar 31 again (Stripe).
Times are int64 microseconds since the epoch, UTC; ``OPEN`` stands for "no end".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.types import is_datetime64_dtype

from shadowbill.pricing.calendar import (
    DAY_US,
    IntArray,
    add_months,
    civil_from_days,
    days_from_civil,
    months_between,
)

BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

__all__ = ["DAY_US", "add_months", "civil_from_days", "days_from_civil", "months_between"]
OPEN = np.iinfo(np.int64).max  # an open end (no valid_to, no cancellation)
NEVER = np.iinfo(np.int64).min  # an absent start


def to_us(series: pd.Series, missing: int) -> IntArray:
    """UTC timestamps as int64 microseconds since the epoch; missing values become ``missing``."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        values = series.dt.tz_convert("UTC")  # already instants: to_datetime would sample them
    elif is_datetime64_dtype(series.dtype):
        values = series.dt.tz_localize("UTC")
    else:
        values = pd.to_datetime(series, utc=True)
    values = values.astype("datetime64[us, UTC]")
    missing_mask = values.isna().to_numpy(dtype=bool)
    naive = values.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    out = naive.view(np.int64).copy()
    out[missing_mask] = missing
    return out


def timestamp_us(value: pd.Timestamp | str | None) -> int | None:
    """One timestamp (naive = UTC) as int64 microseconds, or None."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1))


@dataclass(frozen=True)
class Cadence:
    """How each subscription steps: whole months per period, or a fixed length in µs.

    ``zone`` (IANA names, one per subscription; None: all UTC) makes the steps local: months
    and days are added to the anchor's wall-clock time in the customer's zone, then turned
    back into UTC, so a Los Angeles customer billed at local midnight stays at local midnight
    across daylight-saving changes. Computed one zone at a time, never per row.
    """

    months: IntArray  # months per period (0 when the interval is day or week)
    fixed_us: IntArray  # microseconds per period (0 when the interval is month or year)
    zone: ObjArray | None = None

    def step(self, anchor_us: IntArray, k: IntArray) -> IntArray:
        """The start of period ``k`` from ``anchor`` (clamped month arithmetic)."""
        out = self._step_wall(anchor_us, k, self.months, self.fixed_us)
        if self.zone is None:
            return out
        for name in pd.unique(self.zone):
            if name == "UTC":
                continue
            rows = self.zone == name
            local = utc_to_wall(anchor_us[rows], str(name))
            stepped = self._step_wall(local, k[rows], self.months[rows], self.fixed_us[rows])
            out[rows] = wall_to_utc(stepped, str(name))
        return out

    @staticmethod
    def _step_wall(anchor: IntArray, k: IntArray, months: IntArray, fixed: IntArray) -> IntArray:
        by_month = add_months(anchor, k * months)
        return np.asarray(np.where(months > 0, by_month, anchor + k * fixed), dtype=np.int64)

    def take(self, index: IntArray | BoolArray) -> Cadence:
        """The cadences of some subscriptions (an index or mask)."""
        zone = None if self.zone is None else self.zone[index]
        return Cadence(self.months[index], self.fixed_us[index], zone)


def utc_to_wall(ts_us: IntArray, zone: str) -> IntArray:
    """UTC instants as wall-clock microseconds in ``zone`` (a naive local time)."""
    stamps = pd.to_datetime(np.asarray(ts_us, dtype=np.int64), unit="us", utc=True)
    wall = stamps.tz_convert(zone).tz_localize(None).as_unit("us")
    return np.asarray(wall.asi8, dtype=np.int64)


def wall_to_utc(wall_us: IntArray, zone: str) -> IntArray:
    """Wall-clock microseconds in ``zone`` as UTC instants (a time skipped by DST moves forward,
    a repeated one takes its first occurrence)."""
    stamps = pd.to_datetime(np.asarray(wall_us, dtype=np.int64), unit="us")
    local = stamps.tz_localize(zone, ambiguous=True, nonexistent="shift_forward")
    return np.asarray(local.tz_convert("UTC").as_unit("us").asi8, dtype=np.int64)


def cadence(
    interval: pd.Series, interval_count: pd.Series, zone: ObjArray | None = None
) -> tuple[Cadence, BoolArray]:
    """Each subscription's cadence, and a mask of intervals that are not day/week/month/year."""
    unit = interval.astype("string").str.lower().fillna("").to_numpy(dtype=object)
    count = interval_count.astype("Int64").fillna(1).to_numpy(dtype=np.int64)
    count = np.where(count < 1, 1, count)
    months = np.select([unit == "month", unit == "year"], [count, 12 * count], 0)
    fixed = np.select([unit == "day", unit == "week"], [count * DAY_US, count * 7 * DAY_US], 0)
    bad = (months == 0) & (fixed == 0)
    fixed = np.where(bad, DAY_US, fixed)
    steps = Cadence(months=months.astype(np.int64), fixed_us=fixed.astype(np.int64), zone=zone)
    return steps, np.asarray(bad, dtype=bool)


@dataclass(frozen=True)
class Periods:
    """All billing periods: one row per (subscription, k), grouped by subscription in order."""

    sub: IntArray  # index of the subscription row
    k: IntArray  # period number from the anchor
    start: IntArray  # period_start
    natural_end: IntArray  # anchor + (k+1)*n*interval
    end: IntArray  # natural_end, or canceled_at when the cancellation cuts the period short

    def __len__(self) -> int:
        return len(self.sub)

    def take(self, mask: BoolArray | IntArray) -> Periods:
        """The periods selected by a mask or index array."""
        return Periods(
            self.sub[mask], self.k[mask], self.start[mask], self.natural_end[mask], self.end[mask]
        )


def periods_before(anchor_us: IntArray, steps: Cadence, moment_us: IntArray) -> IntArray:
    """A lower estimate (>= 0, off by at most 2) of how many periods start before ``moment``."""
    late = moment_us > anchor_us
    safe = np.where(late, moment_us, anchor_us)
    by_month = months_between(anchor_us, safe) // np.maximum(steps.months, 1)
    by_fixed = (safe - anchor_us) // np.maximum(steps.fixed_us, 1)
    count = np.where(steps.months > 0, by_month, by_fixed) - 1
    return np.asarray(np.where(late, np.maximum(count, 0), 0), dtype=np.int64)


def first_start_at_or_after(anchor_us: IntArray, steps: Cadence, moment_us: IntArray) -> IntArray:
    """The first period start ``>= moment`` of each subscription (k >= 0)."""
    k = periods_before(anchor_us, steps, moment_us)
    t = steps.step(anchor_us, k)
    for _ in range(4):  # the estimate is at most a few periods short
        late = t < moment_us
        if not late.any():
            break
        k = np.where(late, k + 1, k)
        t = np.where(late, steps.step(anchor_us, k), t)
    return np.asarray(t, dtype=np.int64)


def billing_periods(
    anchor_us: IntArray,
    steps: Cadence,
    canceled_us: IntArray,
    start_us: int | None,
    end_us: int,
) -> Periods:
    """The priced periods: ``period_start >= start`` and ``period_end <= end``, stopping at
    canceled_at, which cuts the last period short. Periods before ``start`` are skipped
    without being generated."""
    n_subs = len(anchor_us)
    limit = np.minimum(canceled_us, end_us)
    live = limit > anchor_us
    k0 = np.zeros(n_subs, dtype=np.int64)
    if start_us is not None:
        k0 = periods_before(anchor_us, steps, np.full(n_subs, start_us, dtype=np.int64))
    k_end = periods_before(anchor_us, steps, np.where(live, limit, anchor_us)) + 4
    count = np.where(live, np.maximum(k_end - k0, 0), 0)
    total = int(count.sum())
    sub = np.repeat(np.arange(n_subs, dtype=np.int64), count)
    first = np.cumsum(count) - count
    k = k0[sub] + np.arange(total, dtype=np.int64) - np.repeat(first, count)
    sub_steps = steps.take(sub)
    anchor = anchor_us[sub]
    start = sub_steps.step(anchor, k)
    keep = start < limit[sub]
    if start_us is not None:
        keep &= start >= start_us
    sub, k, start, anchor = sub[keep], k[keep], start[keep], anchor[keep]
    sub_steps = steps.take(sub)
    natural_end = sub_steps.step(anchor, k + 1)
    end = np.minimum(natural_end, canceled_us[sub])
    keep = end <= end_us
    return Periods(sub[keep], k[keep], start[keep], natural_end[keep], end[keep])
