"""A batch's subscriptions as frames: the chosen rows, their items, and their discounts as
Stripe coupons with a duration (rules: :mod:`shadowbill.targets.operations`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.errors import OperationsError
from shadowbill.listing import first_few
from shadowbill.pricing.catalog import Catalog
from shadowbill.pricing.periods import (
    NEVER,
    OPEN,
    Cadence,
    cadence,
    first_start_at_or_after,
    months_between,
    to_us,
)
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.catalog_ops import (
    METADATA_KEY,
    coupon_key,
    is_metered,
)
from shadowbill.targets.cutover_facts import (
    _facts,
    _lattice_index,
    _take,
)
from shadowbill.translate.keys import isin, positions
from shadowbill.translate.plan import Plan

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_METADATA_TEXT_MAX: Final = 500  # Stripe's limit on a metadata value


@dataclass(frozen=True)
class _Batch:
    """The batch's subscriptions (position = ``sub``) and their target cadence from T."""

    subs: pd.DataFrame  # subscription_id, customer_id, currency, paid_through
    t_us: IntArray  # paid-through = first target period start, per sub
    steps: Cadence  # billing cadence per sub


def _chosen(plan: Plan, subscription_ids: Sequence[str] | None) -> pd.DataFrame:
    a = plan.assignments
    if subscription_ids is not None:
        wanted = pd.Series(list(subscription_ids), dtype="string").drop_duplicates()
        missing = wanted[~isin(wanted, a["subscription_id"])]
        if len(missing):
            raise OperationsError(
                f"subscription {first_few(missing)} is not mapped by the plan of phase {plan.phase}"
            )
        a = a[isin(a["subscription_id"], wanted)]
    return a.sort_values("subscription_id", kind="stable").reset_index(drop=True)


def _batch(plan: Plan, legacy: Snapshot, chosen: pd.DataFrame) -> _Batch:
    subscriptions = plan.snapshot["subscriptions"]
    facts = _facts(chosen, subscriptions, legacy["invoices"])
    subs = subscriptions.iloc[
        positions(chosen["subscription_id"], subscriptions["subscription_id"])
    ]
    steps, _ = cadence(subs["interval"], subs["interval_count"])
    frame = pd.DataFrame(
        {
            "subscription_id": chosen["subscription_id"].astype("string").to_numpy(),
            "customer_id": chosen["customer_id"].astype("string").to_numpy(),
            "currency": chosen["currency"].astype("string").str.lower().to_numpy(),
            "paid_through": facts["paid_through"].to_numpy(),
        }
    )
    return _Batch(frame, to_us(facts["paid_through"], NEVER), steps)


def _items(plan: Plan, batch: _Batch, catalog: Catalog) -> pd.DataFrame:
    """The plan's item rows still active at or after each subscription's paid-through."""
    si = plan.snapshot["subscription_items"]
    si = si[isin(si["subscription_id"], batch.subs["subscription_id"])].reset_index(drop=True)
    sub = positions(si["subscription_id"], batch.subs["subscription_id"])
    frm = to_us(si["valid_from"], NEVER)
    until = to_us(si["valid_to"], OPEN)
    keep = until > batch.t_us[sub]
    out = pd.DataFrame(
        {
            "sub": sub[keep],
            "item_id": si["item_id"].astype("string").to_numpy()[keep],
            "price_id": si["price_id"].astype("string").to_numpy()[keep],
            "quantity": si["quantity"].astype("Int64").to_numpy()[keep],
            "from_us": frm[keep],
            "to_us": until[keep],
        }
    )
    known = {p.id for p in catalog.prices}
    unknown = sorted(set(out["price_id"]) - known)
    if unknown:
        raise OperationsError(
            f"price {', '.join(unknown[:5])} of the batch is not in the target catalog "
            f"{catalog.catalog!r}"
        )
    metered = {p.id for p in catalog.prices if is_metered(p)}
    out["metered"] = out["price_id"].isin(metered).to_numpy(dtype=bool)
    return out


@dataclass(frozen=True)
class _Durations:
    first_us: IntArray  # the first target invoice (a period start) the discount applies to
    invoices: IntArray  # how many target invoices it applies to (-1: forever)
    months: IntArray  # duration_in_months for repeating


def _durations(batch: _Batch, sub: IntArray, start_us: IntArray, end_us: IntArray) -> _Durations:
    """When a discount over [start, end) first applies on the target, and for how long."""
    t = batch.t_us[sub]
    steps = _take(batch.steps, sub)
    first = first_start_at_or_after(t, steps, np.maximum(start_us, t))
    forever = end_us == OPEN
    safe_end = np.where(forever, first + 1, end_us)
    after_last = first_start_at_or_after(t, steps, np.maximum(safe_end, t))
    count = _lattice_index(t, steps, after_last) - _lattice_index(t, steps, first)
    count = np.where(forever, -1, np.maximum(count, 0))
    last = steps.step(t, _lattice_index(t, steps, after_last) - 1)
    months = np.where(
        steps.months > 0,
        (np.maximum(count, 1) - 1) * steps.months + 1,
        months_between(first, np.maximum(last, first)) + 1,
    )
    return _Durations(first, count.astype(np.int64), months.astype(np.int64))


def _duration_tag(d: _Durations) -> pd.Series:
    tags = np.where(
        d.invoices < 0,
        "FOREVER",
        np.where(d.invoices == 1, "ONCE", pd.Series(d.months).astype(str).to_numpy() + "M"),
    )
    return pd.Series(tags, dtype="string")


def _discounts(plan: Plan, batch: _Batch) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Discount rows that still apply on the target, with their coupon ids, and the
    params of every coupon they use."""
    d = plan.snapshot["discounts"]
    d = d[isin(d["subscription_id"], batch.subs["subscription_id"])].reset_index(drop=True)
    sub = positions(d["subscription_id"], batch.subs["subscription_id"])
    dur = _durations(batch, sub, to_us(d["starts_at"], NEVER), to_us(d["ends_at"], OPEN))
    live = dur.invoices != 0
    d, sub = d[live].reset_index(drop=True), sub[live]
    dur = _Durations(dur.first_us[live], dur.invoices[live], dur.months[live])
    currency = batch.subs["currency"].to_numpy()[sub]
    percent = d["percent_off"].astype("string")
    amount = d["amount_off"].astype("Int64")
    is_amount = amount.notna().to_numpy(dtype=bool)
    base = d["coupon_id"].astype("string")
    generated = np.where(
        is_amount,
        "SB_AMT" + amount.astype("string").fillna(""),
        "SB_PCT" + percent.fillna("").str.replace(".", "_", regex=False),
    )
    base = base.fillna(pd.Series(generated, dtype="string"))
    cur_part = pd.Series(np.where(is_amount, "_" + pd.Series(currency).str.upper(), ""))
    coupon_ids = (base + cur_part.astype("string") + "_" + _duration_tag(dur)).astype("string")
    frame = pd.DataFrame(
        {
            "sub": sub,
            "item_id": d["item_id"].astype("string").to_numpy(),
            "coupon": coupon_ids.to_numpy(),
            "first_us": dur.first_us,
            "end_us": to_us(d["ends_at"], OPEN),
        }
    )
    params: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    rows = zip(
        coupon_ids.tolist(),
        d["coupon_id"].astype("string").tolist(),
        percent.tolist(),
        amount.tolist(),
        currency.tolist(),
        dur.invoices.tolist(),
        dur.months.tolist(),
        d["subscription_id"].tolist(),
        strict=True,
    )
    for cid, legacy_id, pct, amt, cur, invoices, months, sid in rows:
        p = _coupon_params(cid, legacy_id, pct, amt, cur, invoices, months)
        if cid in params and params[cid] != p:
            raise OperationsError(
                f"coupon {cid}: the discounts of subscriptions {origin[cid]} and {sid} use the "
                "same legacy coupon id with different terms; give them distinct coupon ids"
            )
        params.setdefault(cid, p)
        origin.setdefault(cid, str(sid))
    return frame, params


def _coupon_params(
    cid: str,
    legacy_id: Any,
    percent: Any,
    amount: Any,
    currency: str,
    invoices: int,
    months: int,
) -> dict[str, Any]:
    p: dict[str, Any] = {"id": cid}
    if amount is not None and not pd.isna(amount):
        p["amount_off"] = int(amount)
        p["currency"] = currency
    else:
        p["percent_off"] = str(percent)
    if invoices < 0:
        p["duration"] = "forever"
    elif invoices == 1:
        p["duration"] = "once"
    else:
        p["duration"] = "repeating"
        p["duration_in_months"] = int(months)
    meta = {METADATA_KEY: coupon_key(cid)}
    if legacy_id is not None and not pd.isna(legacy_id):
        meta["legacy_coupon_id"] = str(legacy_id)
    p["metadata"] = meta
    return p


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))
