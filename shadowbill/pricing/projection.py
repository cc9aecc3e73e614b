"""Projected periods after the cut-over: usage carried forward from the last measured period.

Comparison B looks past the snapshot into the months after the cut-over; licensed items
continue by themselves, but usage has not happened yet. The projection assumes each
meter keeps its last measured quantity, and says so in the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.pricing.periods import NEVER, add_months, months_between, to_us
from shadowbill.snapshot.tables import Snapshot

_MONTHS = {"month": 1, "year": 12}


def project_usage(snapshot: Snapshot, until: pd.Timestamp) -> Snapshot:
    """A snapshot whose usage continues at each meter's last quantity up to ``until``."""
    usage = snapshot["usage"]
    if usage.empty:
        return snapshot
    last = usage.sort_values("period_start").drop_duplicates(
        ["subscription_id", "meter"], keep="last"
    )
    subs = snapshot["subscriptions"].set_index("subscription_id")
    last = last[last["subscription_id"].isin(subs.index)]
    sub = subs.loc[last["subscription_id"]]
    months = (
        sub["interval"].map(_MONTHS).fillna(0).astype("int64").to_numpy()
        * sub["interval_count"].fillna(1).astype("int64").to_numpy()
    )
    anchor = sub["trial_end"].fillna(sub["started_at"])
    canceled = sub["canceled_at"].fillna(until)
    stop = canceled.where(canceled < until, until)
    keep = months > 0
    last, anchor, stop, months = last[keep], anchor[keep], stop[keep], months[keep]
    if last.empty:
        return snapshot
    anchor_us = to_us(anchor, NEVER)
    k0 = months_between(anchor_us, to_us(last["period_start"], NEVER)) // months
    horizon = months_between(anchor_us, to_us(stop, NEVER)) // months
    count = np.maximum(horizon - k0, 0)
    rows = np.repeat(np.arange(len(last)), count)
    step = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count) + 1
    k = k0[rows] + step
    start_us = add_months(anchor_us[rows], k * months[rows])
    end_us = add_months(anchor_us[rows], (k + 1) * months[rows])
    stop_us = to_us(stop, NEVER)[rows]
    valid = end_us <= stop_us
    src = last.iloc[rows[valid]]
    projected = pd.DataFrame(
        {
            "subscription_id": src["subscription_id"].to_numpy(),
            "meter": src["meter"].to_numpy(),
            "period_start": pd.to_datetime(start_us[valid], unit="us", utc=True),
            "period_end": pd.to_datetime(end_us[valid], unit="us", utc=True),
            "quantity": src["quantity"].to_numpy(),
        }
    ).astype(usage.dtypes.to_dict())
    projected = projected[
        ~projected.set_index(["subscription_id", "meter", "period_start"]).index.isin(
            usage.set_index(["subscription_id", "meter", "period_start"]).index
        )
    ]
    tables = dict(snapshot.tables)
    tables["usage"] = pd.concat([usage, projected], ignore_index=True)
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)
