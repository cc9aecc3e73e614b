"""Event times cut to the local date they bill on (date_in_zone_from), and per-column zones."""

from __future__ import annotations

import pandas as pd
import pytest

from shadowbill.extract.conversions import ConversionContext, convert_columns
from shadowbill.extract.spec import ColumnSpec
from shadowbill.snapshot.tables import TABLES

ITEMS = TABLES["subscription_items"].columns


def _convert(spec: dict[str, object], frame: pd.DataFrame) -> pd.Series:
    columns = {"valid_from": ColumnSpec.model_validate(spec)}
    return convert_columns(frame, columns, ITEMS, ConversionContext())["valid_from"]  # type: ignore[return-value]


def test_utc_event_times_become_local_midnights() -> None:
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(
                ["2024-03-20 16:30:00", "2024-03-20 05:00:00", "2024-01-05 02:00:00"]
            ),
            "zone": ["America/Los_Angeles", "America/Los_Angeles", "Asia/Tokyo"],
        }
    )
    result = _convert({"from": "at", "type": "timestamp", "date_in_zone_from": "zone"}, frame)
    assert result.values.tolist() == [
        pd.Timestamp("2024-03-20T07:00:00Z"),  # 09:30 PDT on the 20th
        pd.Timestamp("2024-03-19T07:00:00Z"),  # 22:00 PDT on the 19th
        pd.Timestamp("2024-01-04T15:00:00Z"),  # 11:00 JST on the 5th
    ]


def test_dates_read_in_the_rows_zone_column_by_column() -> None:
    frame = pd.DataFrame({"day": ["2024-03-14", "2024-01-14"], "zone": ["America/Los_Angeles"] * 2})
    result = _convert({"from": "day", "type": "timestamp", "timezone_from": "zone"}, frame)
    assert result.values.tolist() == [
        pd.Timestamp("2024-03-14T07:00:00Z"),
        pd.Timestamp("2024-01-14T08:00:00Z"),
    ]


def test_date_in_zone_must_be_a_zone() -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        ColumnSpec.model_validate({"from": "at", "date_in_zone": "Mars/Olympus"})
