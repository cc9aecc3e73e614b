"""Usage rows and legacy invoices whose periods start on no billing-period boundary.

The pricing engine looks usage up by its exact ``period_start`` and pairs legacy invoices
with recomputed ones by period, so a period that starts off the subscription's billing
calendar (a DATE read as midnight UTC for a customer billed in Los Angeles, an event time
with minutes) silently prices nothing or pairs nothing. Extraction counts such rows as a
warning in the manifest. The calendar is the engine's: the anchor is ``trial_end``, else
``started_at``; months are added on the customer's local wall clock (``customers.timezone``)
with the day clamped to the month; the trial period from ``started_at`` counts too.
Vectorized: one pass per zone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from shadowbill.extract.value_parsers import zone_names

WARNINGS = {
    "usage": "usage_off_period_boundary",
    "invoices": "invoices_off_period_boundary",
}
WARNING_ROWS = {
    "usage_off_period_boundary": "usage rows",
    "invoices_off_period_boundary": "legacy invoices",
}


def _wall(stamps: pd.Series, zones: pd.Series) -> pd.Series:
    """UTC instants as naive wall-clock times in each row's zone."""
    out = pd.Series(pd.NaT, index=stamps.index, dtype="datetime64[us]")
    for zone in zones.unique():
        rows = zones == zone
        local = stamps[rows].dt.tz_convert(str(zone)).dt.tz_localize(None)
        out[rows] = local.astype("datetime64[us]")
    return out


def off_boundary(rows: pd.DataFrame, subs: pd.DataFrame, customers: pd.DataFrame) -> int:
    """How many ``rows`` (subscription_id, period_start) start on no period boundary."""
    if rows.empty or subs.empty:
        return 0
    zone = customers.set_index("customer_id")["timezone"] if "timezone" in customers else None
    s = subs.drop_duplicates("subscription_id").set_index("subscription_id")
    joined = rows[["subscription_id", "period_start"]].join(
        s[["customer_id", "interval", "interval_count", "started_at", "trial_end"]],
        on="subscription_id",
        how="inner",
    )
    joined = joined[joined["period_start"].notna() & joined["started_at"].notna()]
    if joined.empty:
        return 0
    names = joined["customer_id"].map(zone) if zone is not None else None
    known, _ = zone_names(names, "UTC", len(joined))  # an unknown name is quarantined anyway
    zones = pd.Series(known, index=joined.index, dtype="string")
    anchor = _wall(joined["trial_end"].fillna(joined["started_at"]), zones)
    start = _wall(joined["period_start"], zones)
    started = _wall(joined["started_at"], zones)
    count = joined["interval_count"].astype("Int64").fillna(1).clip(lower=1).to_numpy(np.int64)
    unit = joined["interval"].astype("string").fillna("month").to_numpy(dtype=object)
    months = np.where(unit == "year", 12 * count, count)
    k = (start.dt.year * 12 + start.dt.month) - (anchor.dt.year * 12 + anchor.dt.month)
    day = np.minimum(anchor.dt.day, start.dt.days_in_month)
    time_of_day = (start - start.dt.normalize()) == (anchor - anchor.dt.normalize())
    by_month = (k >= 0) & (k.to_numpy() % months == 0) & (start.dt.day == day) & time_of_day
    step = pd.to_timedelta(np.where(unit == "week", 7 * count, count), unit="D")
    since = start - anchor
    by_days = (since >= pd.Timedelta(0)) & ((since % step) == pd.Timedelta(0))
    on = np.where(np.isin(unit, ["month", "year"]), by_month, by_days) | (start == started)
    return int((~np.asarray(on, dtype=bool)).sum())


def boundary_warnings(tables: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Warning name -> rows of usage and invoices off their subscription's period boundaries."""
    subs = tables.get("subscriptions")
    customers = tables.get("customers")
    out = {}
    for name, warning in WARNINGS.items():
        frame = tables.get(name)
        if frame is None or subs is None or customers is None:
            out[warning] = 0
            continue
        out[warning] = off_boundary(frame, subs, customers)
    return out
