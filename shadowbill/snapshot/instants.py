"""Where billing stands in a snapshot: the two instants every stage reads from it.

- :func:`latest_instant` (and :func:`latest_instant_in` for a snapshot on disk, reading
  only the date columns): the latest instant the data reaches. A rollout without
  ``as_of`` judges its cohorts there (never the wall clock, so reruns are identical).
- :func:`billed_through`: how far the legacy engine has billed, the end of the history
  ``shadowbill price`` recomputes when no ``--to`` is given.

They are decided here once; the stages take them as arguments (``as_of=``, ``end=``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shadowbill.snapshot.tables import Snapshot

# The dates an estate's "now" is read from when the rollout sets no as_of.
AS_OF_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "subscription_items": ("valid_from", "valid_to"),
    "subscriptions": ("current_period_start",),
    "usage": ("period_end",),
    "invoices": ("period_end",),
}


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def latest_instant(snapshot: Snapshot) -> pd.Timestamp | None:
    """The latest instant a snapshot's data reaches (AS_OF_COLUMNS), or None without dates."""
    candidates = [snapshot[t][c] for t, cols in AS_OF_COLUMNS.items() for c in cols]
    latest = [s.max() for s in candidates if len(s) and s.notna().any()]
    return _utc(pd.Timestamp(max(latest))) if latest else None


def latest_instant_in(folder: Path) -> pd.Timestamp | None:
    """:func:`latest_instant` of a snapshot folder, reading only the date columns."""
    latest: list[pd.Timestamp] = []
    for table, columns in AS_OF_COLUMNS.items():
        files = sorted(folder.glob(f"{table}.parquet")) + sorted(folder.glob(f"{table}/*.parquet"))
        for path in files:
            data = pq.read_table(path, columns=list(columns))
            for name in columns:
                top = pc.max(data[name]).as_py()
                if top is not None:
                    latest.append(pd.Timestamp(top))
    return _utc(max(latest)) if latest else None


def billed_through(snapshot: Snapshot) -> pd.Timestamp | None:
    """How far the legacy engine has billed: its latest invoice period_end, else the latest
    current_period_start (every period before it has ended), but never after the extraction
    time; the extraction time alone when neither is known; None without any."""
    candidates = []
    for table, column in (("invoices", "period_end"), ("subscriptions", "current_period_start")):
        values = snapshot[table][column].dropna()
        if len(values):
            candidates.append(pd.Timestamp(values.max()))
            break
    extracted = snapshot.manifest.get("extracted_at")
    if extracted:
        candidates.append(pd.Timestamp(str(extracted)))
    return min(candidates) if candidates else None
