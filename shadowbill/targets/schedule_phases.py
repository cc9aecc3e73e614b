"""A subscription's target future cut into schedule phases, with their items and discounts
(rules: :mod:`shadowbill.targets.operations`)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.errors import OperationsError
from shadowbill.pricing.periods import (
    OPEN,
    first_start_at_or_after,
)
from shadowbill.targets.batch_frames import (
    _Batch,
)
from shadowbill.targets.cutover_facts import (
    _take,
    _ts,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _phases(batch: _Batch, items: pd.DataFrame, discounts: pd.DataFrame) -> pd.DataFrame:
    """Per subscription its target phases: cut at item changes, later-starting discounts."""
    t = batch.t_us
    subs: list[IntArray] = [np.arange(len(t), dtype=np.int64)]
    instants: list[IntArray] = [t]
    isub = items["sub"].to_numpy(dtype=np.int64)
    frm = items["from_us"].to_numpy(dtype=np.int64)
    until = items["to_us"].to_numpy(dtype=np.int64)
    later_from = frm > t[isub]
    subs.append(isub[later_from])
    instants.append(frm[later_from])
    later_to = (until > t[isub]) & (until != OPEN)
    subs.append(isub[later_to])
    instants.append(until[later_to])
    dsub = discounts["sub"].to_numpy(dtype=np.int64)
    dfirst = discounts["first_us"].to_numpy(dtype=np.int64)
    later = dfirst > t[dsub]
    subs.append(dsub[later])
    instants.append(dfirst[later])
    cuts = pd.DataFrame({"sub": np.concatenate(subs), "start_us": np.concatenate(instants)})
    cuts = cuts.drop_duplicates().sort_values(["sub", "start_us"], kind="stable")
    cuts = cuts.reset_index(drop=True)
    sub = cuts["sub"].to_numpy(dtype=np.int64)
    start = cuts["start_us"].to_numpy(dtype=np.int64)
    same_next = np.append(sub[1:] == sub[:-1], False)
    end = np.where(same_next, np.append(start[1:], OPEN), OPEN)
    aligned = first_start_at_or_after(t[sub], _take(batch.steps, sub), start) == start
    cuts["end_us"] = end
    cuts["phase"] = cuts.groupby("sub").cumcount().to_numpy(dtype=np.int64)
    cuts["proration_behavior"] = np.where(aligned, "none", "create_prorations")
    return cuts


def _phase_items(phases: pd.DataFrame, items: pd.DataFrame, batch: _Batch) -> pd.DataFrame:
    both = phases[["sub", "phase", "start_us"]].merge(items, on="sub", how="inner")
    active = (both["from_us"] <= both["start_us"]) & (both["start_us"] < both["to_us"])
    both = both[active.to_numpy(dtype=bool)]
    filled = phases.merge(
        both[["sub", "phase"]].drop_duplicates(), on=["sub", "phase"], how="left", indicator=True
    )
    empty = filled[(filled["_merge"] == "left_only").to_numpy(dtype=bool)]
    if len(empty):
        s, ph, at = (int(empty[c].iloc[0]) for c in ("sub", "phase", "start_us"))
        start = _ts(np.array([at], dtype=np.int64)).iloc[0]
        raise OperationsError(
            f"subscription {batch.subs['subscription_id'].iloc[s]} has no item at "
            f"{start.isoformat()} (phase {ph} of its target billing); Stripe needs at least one"
        )
    return both.sort_values(["sub", "phase", "price_id"], kind="stable").reset_index(drop=True)


def _phase_discounts(phases: pd.DataFrame, discounts: pd.DataFrame) -> pd.DataFrame:
    both = phases[["sub", "phase", "start_us"]].merge(discounts, on="sub", how="inner")
    live = (both["first_us"] <= both["start_us"]) & (both["start_us"] < both["end_us"])
    both = both[live.to_numpy(dtype=bool)]
    return both.sort_values(
        ["sub", "phase", "item_id", "coupon"], kind="stable", na_position="first"
    )
