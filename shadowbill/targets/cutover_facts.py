"""Where each subscription of a plan hands over: the legacy paid-through instant and its first
target period (timing rules: :mod:`shadowbill.targets.operations`)."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.errors import OperationsError
from shadowbill.pricing.periods import (
    NEVER,
    OPEN,
    Cadence,
    cadence,
    months_between,
    periods_before,
    to_us,
)
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.keys import isin, positions
from shadowbill.translate.plan import TS, Plan

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


FACT_COLUMNS: Final[dict[str, str]] = {
    "subscription_id": "string",
    "customer_id": "string",
    "paid_through": TS,
    "first_target_period_start": TS,
    "first_target_period_end": TS,
}
_US: Final = 1_000_000


def _ts(us: IntArray) -> pd.Series:
    """int64 microseconds (NEVER/OPEN = missing) as a UTC timestamp column."""
    arr = np.asarray(us, dtype=np.int64)
    missing = (arr == NEVER) | (arr == OPEN)
    stamps = pd.to_datetime(np.where(missing, 0, arr), unit="us", utc=True).astype(TS)
    return pd.Series(stamps).where(~missing).astype(TS).reset_index(drop=True)


def _seconds(us: int) -> int:
    """A Stripe timestamp: whole seconds since the epoch (sub-second parts dropped)."""
    return int(us) // _US


def _take(steps: Cadence, index: IntArray) -> Cadence:
    return steps.take(index)


def _last_start_at_or_before(anchor_us: IntArray, steps: Cadence, moment_us: IntArray) -> IntArray:
    """The last period start ``<= moment`` (NEVER when the moment is before the anchor)."""
    valid = (anchor_us != NEVER) & (moment_us != NEVER) & (moment_us >= anchor_us)
    anchor = np.where(valid, anchor_us, 0)
    moment = np.where(valid, moment_us, 0)
    k = periods_before(anchor, steps, moment)
    start = steps.step(anchor, k)
    for _ in range(6):  # the estimate is at most a few periods short
        following = steps.step(anchor, k + 1)
        later = following <= moment
        if not later.any():
            break
        k = np.where(later, k + 1, k)
        start = np.where(later, following, start)
    return np.asarray(np.where(valid, start, NEVER), dtype=np.int64)


def _lattice_index(anchor_us: IntArray, steps: Cadence, at_us: IntArray) -> IntArray:
    """How many whole periods from ``anchor`` to ``at`` (exact for period starts)."""
    by_month = months_between(anchor_us, at_us) // np.maximum(steps.months, 1)
    by_fixed = (at_us - anchor_us) // np.maximum(steps.fixed_us, 1)
    return np.asarray(np.where(steps.months > 0, by_month, by_fixed), dtype=np.int64)


def _facts(
    assignments: pd.DataFrame, subscriptions: pd.DataFrame, invoices: pd.DataFrame
) -> pd.DataFrame:
    a = assignments[["subscription_id", "customer_id", "cutover_at"]].reset_index(drop=True)
    at = positions(a["subscription_id"], subscriptions["subscription_id"])
    if (at < 0).any():
        missing = a["subscription_id"][at < 0].head(5).tolist()
        raise OperationsError(f"plan snapshot has no subscriptions row for {', '.join(missing)}")
    subs = subscriptions.iloc[at].reset_index(drop=True)
    inv = invoices[isin(invoices["subscription_id"], a["subscription_id"])]
    last_end = inv.groupby("subscription_id", sort=False)["period_end"].max()
    last_end = last_end.reindex(a["subscription_id"].astype(str).to_numpy())
    steps, _ = cadence(subs["interval"], subs["interval_count"])
    anchor = subs["trial_end"].astype(TS).fillna(subs["started_at"].astype(TS))
    boundary = _last_start_at_or_before(to_us(anchor, NEVER), steps, to_us(a["cutover_at"], NEVER))
    paid = np.maximum(to_us(pd.Series(last_end.to_numpy()), NEVER), boundary)
    paid = np.where(paid == NEVER, to_us(subs["current_period_end"], NEVER), paid)
    if (paid == NEVER).any():
        missing = a["subscription_id"][paid == NEVER].head(5).tolist()
        raise OperationsError(
            "no legacy paid-through instant (no invoice, no period before the cut-over, no "
            f"current_period_end) for subscription {', '.join(missing)}"
        )
    end = steps.step(paid, np.ones(len(paid), dtype=np.int64))
    return pd.DataFrame(
        {
            "subscription_id": a["subscription_id"].astype("string").to_numpy(),
            "customer_id": a["customer_id"].astype("string").to_numpy(),
            "paid_through": _ts(paid).to_numpy(),
            "first_target_period_start": _ts(paid).to_numpy(),
            "first_target_period_end": _ts(end).to_numpy(),
        }
    ).astype(FACT_COLUMNS)


def cutover_facts(plan: Plan, legacy: Snapshot) -> pd.DataFrame:
    """Per mapped subscription, the hand-over the runner records: the legacy paid-through
    instant, which is where the first target period starts, and that period's end.

    Columns ``FACT_COLUMNS``, sorted by subscription_id. The first target period is one
    interval of the subscription (months added Stripe's way, day clamped).
    """
    facts = _facts(plan.assignments, plan.snapshot["subscriptions"], legacy["invoices"])
    return facts.sort_values("subscription_id", kind="stable").reset_index(drop=True)
