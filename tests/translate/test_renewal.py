"""Calendar arithmetic for cut-overs and switches (docs/billing-model.md's periods)."""

from __future__ import annotations

import calendar
import datetime as dt

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowbill.translate.renewal import add_months, next_renewal

TS = "datetime64[us, UTC]"


def _ts(*values: str | None) -> pd.Series:
    return pd.Series([pd.Timestamp(v) if v else pd.NaT for v in values], dtype=TS)


def test_add_months_clamps_the_day_and_keeps_the_time() -> None:
    out = add_months(
        _ts("2025-01-31T10:30:00Z", "2024-02-29T00:00:00Z", None, "2025-11-15T23:59:59Z"),
        [1, 12, 1, 3],
    )
    assert out.tolist()[0] == pd.Timestamp("2025-02-28T10:30:00Z")
    assert out.tolist()[1] == pd.Timestamp("2025-02-28T00:00:00Z")
    assert pd.isna(out.tolist()[2])
    assert out.tolist()[3] == pd.Timestamp("2026-02-15T23:59:59Z")


def test_add_months_from_the_anchor_not_chained() -> None:
    anchor = _ts("2025-01-31T00:00:00Z", "2025-01-31T00:00:00Z")
    assert add_months(anchor, [2, -1]).tolist() == [
        pd.Timestamp("2025-03-31T00:00:00Z"),
        pd.Timestamp("2024-12-31T00:00:00Z"),
    ]


def _subs(
    started: list[str], interval: list[str], count: list[int], trial: list[str | None] | None = None
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "started_at": _ts(*started),
            "trial_end": _ts(*(trial or [None] * len(started))),
            "interval": interval,
            "interval_count": pd.array(count, dtype="Int64"),
        }
    )


@pytest.mark.parametrize(
    ("started", "interval", "count", "ref", "expected"),
    [
        ("2025-01-31T08:00:00Z", "month", 1, "2025-03-01T00:00:00Z", "2025-03-31T08:00:00Z"),
        ("2025-01-31T08:00:00Z", "month", 1, "2025-02-28T08:00:00Z", "2025-02-28T08:00:00Z"),
        ("2025-01-15T00:00:00Z", "month", 3, "2025-05-01T00:00:00Z", "2025-07-15T00:00:00Z"),
        ("2024-02-29T00:00:00Z", "year", 1, "2025-03-01T00:00:00Z", "2026-02-28T00:00:00Z"),
        ("2025-06-01T00:00:00Z", "month", 1, "2025-01-01T00:00:00Z", "2025-06-01T00:00:00Z"),
        ("2025-01-01T00:00:00Z", "week", 2, "2025-03-01T00:00:00Z", "2025-03-12T00:00:00Z"),
        ("2025-01-01T00:00:00Z", "day", 1, "2025-01-05T12:00:00Z", "2025-01-06T00:00:00Z"),
    ],
)
def test_next_renewal(started: str, interval: str, count: int, ref: str, expected: str) -> None:
    out = next_renewal(_subs([started], [interval], [count]), _ts(ref))
    assert out.tolist() == [pd.Timestamp(expected)]


def test_next_renewal_counts_from_the_trial_end() -> None:
    subs = _subs(["2025-01-01T00:00:00Z"], ["month"], [1], ["2025-01-15T00:00:00Z"])
    assert next_renewal(subs, _ts("2025-03-02T00:00:00Z")).tolist() == [
        pd.Timestamp("2025-03-15T00:00:00Z")
    ]


@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2090, 1, 1)),
            st.integers(-600, 600),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_add_months_matches_the_calendar(cases: list[tuple[dt.datetime, int]]) -> None:
    stamps = pd.Series([pd.Timestamp(t, tz="UTC") for t, _ in cases], dtype=TS)
    out = add_months(stamps, [m for _, m in cases])
    for (t, months), got in zip(cases, out.tolist(), strict=True):
        total = t.year * 12 + t.month - 1 + months
        year, month = divmod(total, 12)
        day = min(t.day, calendar.monthrange(year, month + 1)[1])
        assert got == pd.Timestamp(t.replace(year=year, month=month + 1, day=day), tz="UTC")
