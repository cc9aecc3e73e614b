"""Item-history segments: the stretches of time during which a subscription's items are constant.

Every ``valid_from`` and ``valid_to`` of a subscription's item rows (plus any extra
instants, such as a scheduled price switch) cuts its history. Each resulting segment
``[start, end)`` has a fixed set of active item rows, so a rollout rule can be applied
to it as a whole; the last segment of a subscription with open rows has ``end`` NaT.

Computed with sorted integer keys and ``searchsorted``: an item row is active in a
contiguous run of its subscription's cut points, so no join is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

TS_DTYPE: Final = "datetime64[us, UTC]"
IntArray = npt.NDArray[np.int64]
_NAT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Segments:
    """Segments and their active item rows.

    ``frame``: seg (0..n-1, ordered by subscription and start), sub (the subscription's
    integer key), start, end (NaT = open), current (the open segment: its rows are the
    subscription's current items). ``items``: seg, item_id, price_id, quantity for every
    row active in the segment, ordered by seg.
    """

    frame: pd.DataFrame
    items: pd.DataFrame


def _micros(stamps: pd.Series) -> IntArray:
    values = stamps.astype(TS_DTYPE).dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return np.where(np.isnat(values), _NAT, values.astype(np.int64))


def _stamps(micros: IntArray) -> pd.Series:
    values = np.where(micros == _NAT, np.datetime64("NaT", "us"), micros.astype("datetime64[us]"))
    return pd.Series(values.astype("datetime64[us]")).dt.tz_localize("UTC").astype(TS_DTYPE)


def build_segments(
    items: pd.DataFrame, extra_bounds: tuple[IntArray, pd.Series] | None = None
) -> Segments:
    """Cut the item history of every subscription into constant segments.

    ``items`` has the canonical item columns plus ``sub``, an integer key of the
    subscription. ``extra_bounds`` = (sub keys, instants) adds cut points. Segments with
    no active row (gaps, or after every item ended) are left out.
    """
    sub = items["sub"].to_numpy(dtype=np.int64)
    start = _micros(items["valid_from"])
    end = _micros(items["valid_to"])
    open_row = end == _NAT
    b_sub = [sub, sub[~open_row]]
    b_t = [start, end[~open_row]]
    if extra_bounds is not None and len(extra_bounds[0]):
        extra_t = _micros(extra_bounds[1])
        keep = (extra_t != _NAT) & np.isin(extra_bounds[0], sub)
        b_sub.append(np.asarray(extra_bounds[0], dtype=np.int64)[keep])
        b_t.append(extra_t[keep])
    all_sub = np.concatenate(b_sub)
    all_t = np.concatenate(b_t)
    instants, t_rank = np.unique(all_t, return_inverse=True)
    width = np.int64(len(instants) + 1)
    keys = np.unique(all_sub * width + t_rank)  # sorted, distinct (sub, instant) cut points
    cut_sub = keys // width
    cut_t = instants[keys % width]

    # Each row is active from its own start's cut point up to (not including) its end's,
    # or to the last cut point of its subscription when it is open.
    rank_of = {"start": np.searchsorted(instants, start), "end": np.searchsorted(instants, end)}
    lo = np.searchsorted(keys, sub * width + rank_of["start"])
    sub_end = np.searchsorted(keys, (sub + 1) * width)
    hi = np.where(open_row, sub_end, np.searchsorted(keys, sub * width + rank_of["end"]))
    count = np.maximum(hi - lo, 0)
    row = np.repeat(np.arange(len(sub)), count)
    offset = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
    cut = np.repeat(lo, count) + offset

    used, seg_of_item = np.unique(cut, return_inverse=True)
    next_cut = used + 1
    same_sub_next = (next_cut < len(keys)) & (
        cut_sub[np.minimum(next_cut, len(keys) - 1)] == cut_sub[used]
    )
    seg_end = np.where(same_sub_next, cut_t[np.minimum(next_cut, len(keys) - 1)], _NAT)
    frame = pd.DataFrame(
        {
            "seg": np.arange(len(used), dtype=np.int64),
            "sub": cut_sub[used],
            "start": _stamps(cut_t[used]),
            "end": _stamps(seg_end),
        }
    )
    frame["current"] = frame["end"].isna()
    picked = items[["item_id", "price_id", "quantity"]].iloc[row].reset_index(drop=True)
    seg_items = picked.astype({"item_id": "string", "price_id": "string", "quantity": "Int64"})
    seg_items.insert(0, "seg", seg_of_item.astype(np.int64))
    seg_items = seg_items.sort_values(["seg", "price_id", "item_id"], kind="stable")
    return Segments(frame=frame, items=seg_items.reset_index(drop=True))
