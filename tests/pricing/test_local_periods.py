"""Billing periods in the customer's own time zone (timezone_from): local dates, UTC instants."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.pricing.periods import OPEN, billing_periods, cadence, timestamp_us


def _starts(zone: str | None, anchor: str, months: int = 4) -> list[pd.Timestamp]:
    steps, _ = cadence(
        pd.Series(["month"]),
        pd.Series([1]),
        None if zone is None else np.array([zone], dtype=object),
    )
    anchor_us = np.array([timestamp_us(anchor)], dtype=np.int64)
    end = timestamp_us(pd.Timestamp(anchor) + pd.DateOffset(months=months, days=1))
    assert end is not None
    periods = billing_periods(anchor_us, steps, np.array([OPEN]), None, end)
    return [pd.Timestamp(int(t), unit="us", tz="UTC") for t in periods.start]


def test_los_angeles_customer_is_billed_at_local_midnight_across_dst() -> None:
    starts = _starts("America/Los_Angeles", "2024-01-14T08:00:00Z")
    assert starts == [
        pd.Timestamp("2024-01-14T08:00:00Z"),
        pd.Timestamp("2024-02-14T08:00:00Z"),
        pd.Timestamp("2024-03-14T07:00:00Z"),  # PDT from 10 March
        pd.Timestamp("2024-04-14T07:00:00Z"),
    ]


def test_utc_stepping_keeps_the_utc_time_of_day() -> None:
    starts = _starts(None, "2024-01-14T08:00:00Z")
    assert starts[2] == pd.Timestamp("2024-03-14T08:00:00Z")


def test_month_end_clamps_on_the_local_date() -> None:
    # 31 Jan local in Tokyo is 30 Jan 15:00Z: the local date decides the clamp (29 Feb)
    starts = _starts("Asia/Tokyo", "2024-01-30T15:00:00Z", months=3)
    assert starts[1] == pd.Timestamp("2024-02-28T15:00:00Z")  # 29 Feb 00:00 JST
    assert starts[2] == pd.Timestamp("2024-03-30T15:00:00Z")  # 31 Mar 00:00 JST
