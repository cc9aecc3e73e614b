"""Calendar arithmetic for cut-over and switch dates: add months, find the next renewal.

Follows docs/billing-model.md: months are added to the anchor (not chained), the day is
clamped to the month's length and the time of day is kept, so an anchor on the 31st
renews on Feb 28/29 and on the 31st again. The anchor is ``trial_end`` when set, else
``started_at``. Everything works on whole columns.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.pricing import calendar

TS_DTYPE: Final = "datetime64[us, UTC]"
_MAX_STEPS = 4


def add_months(stamps: pd.Series, months: npt.ArrayLike) -> pd.Series:
    """Each timestamp plus a whole number of months, day clamped, time of day kept."""
    stamps = stamps.astype(TS_DTYPE)
    shift = np.broadcast_to(np.asarray(months, dtype=np.int64), (len(stamps),))
    valid = stamps.notna().to_numpy()
    naive = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    us = np.where(valid, naive, np.datetime64(0, "us")).astype(np.int64)
    moved = calendar.add_months(us, shift).astype("datetime64[us]")
    result = pd.Series(moved, index=stamps.index).dt.tz_localize("UTC")
    return result.where(valid).astype(TS_DTYPE)


def _step_months(interval: pd.Series, interval_count: pd.Series) -> npt.NDArray[np.int64]:
    per = np.where(interval.to_numpy(dtype=object) == "year", 12, 1)
    return per.astype(np.int64) * interval_count.fillna(1).to_numpy(dtype=np.int64)


def next_renewal(subscriptions: pd.Series | pd.DataFrame, not_before: pd.Series) -> pd.Series:
    """The first period start of each subscription at or after ``not_before``.

    ``subscriptions`` has the canonical columns started_at, trial_end, interval and
    interval_count; ``not_before`` is aligned with it.
    """
    subs = subscriptions if isinstance(subscriptions, pd.DataFrame) else subscriptions.to_frame()
    anchor = subs["trial_end"].astype(TS_DTYPE).fillna(subs["started_at"].astype(TS_DTYPE))
    ref = not_before.astype(TS_DTYPE)
    by_days = subs["interval"].isin(["day", "week"]).to_numpy()
    out = pd.Series(pd.NaT, index=subs.index, dtype=TS_DTYPE)

    if (~by_days).any():
        a, r = anchor[~by_days], ref[~by_days]
        step = _step_months(subs["interval"][~by_days], subs["interval_count"][~by_days])
        elapsed = (r.dt.year - a.dt.year).to_numpy(dtype=np.int64) * 12 + (
            r.dt.month - a.dt.month
        ).to_numpy(dtype=np.int64)
        k = np.maximum(elapsed // step - 1, 0)
        candidate = add_months(a, k * step)
        for _ in range(_MAX_STEPS):  # at most a few steps: k starts one period early
            late = (candidate < r).to_numpy()
            if not late.any():
                break
            k = k + late.astype(np.int64)
            candidate = add_months(a, k * step)
        out[~by_days] = candidate

    if by_days.any():
        a, r = anchor[by_days], ref[by_days]
        days = np.where(subs["interval"][by_days].to_numpy(dtype=object) == "week", 7, 1)
        step_us = (
            days.astype(np.int64)
            * subs["interval_count"][by_days].fillna(1).to_numpy(dtype=np.int64)
            * 86_400_000_000
        )
        gap = (r - a).to_numpy(dtype="timedelta64[us]").astype(np.int64)
        k = np.maximum(-(-gap // step_us), 0)
        out[by_days] = a + pd.to_timedelta(k * step_us, unit="us")
    return out
