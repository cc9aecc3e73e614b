"""Price protection as a Stripe coupon per subscription, priced once with the reconciler's
projection (rules: :mod:`shadowbill.targets.operations`)."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.pricing.engine import price
from shadowbill.pricing.periods import (
    NEVER,
    to_us,
)
from shadowbill.pricing.projection import project_usage
from shadowbill.pricing.protection import protection_discounts
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.batch_frames import (
    _METADATA_TEXT_MAX,
    _Batch,
    _coupon_params,
    _durations,
    _records,
)
from shadowbill.translate.keys import isin, positions
from shadowbill.translate.plan import Plan
from shadowbill.translate.renewal import add_months
from shadowbill.translate.rollout import Rollout, target_price_catalog

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PROTECTION_COUPON_PREFIX: Final = "pp_"


def _only(snapshot: Snapshot, ids: pd.Series) -> Snapshot:
    tables = {}
    for name, frame in snapshot.tables.items():
        if "subscription_id" in frame.columns:
            tables[name] = frame[isin(frame["subscription_id"], ids)]
        else:
            tables[name] = frame
    lines = snapshot["invoice_lines"]
    tables["invoice_lines"] = lines[isin(lines["invoice_id"], tables["invoices"]["invoice_id"])]
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)


def projected_protection(
    plan: Plan, rollout: Rollout, legacy: Snapshot, ids: pd.Series
) -> pd.DataFrame:
    """The per-invoice price protection amounts of ``ids``, as the reconciler computes them.

    Both models are priced over the protected periods with usage carried forward
    (``project_usage``); rows are :func:`protection_discounts`'s (one per protected
    invoice with an excess), sorted by subscription and period.
    """
    protections = plan.protections[isin(plan.protections["subscription_id"], ids)]
    if protections.empty:
        return protection_discounts(protections, pd.DataFrame(), pd.DataFrame())
    chosen = protections["subscription_id"]
    start = pd.Timestamp(protections["starts_at"].min())
    end = pd.Timestamp(add_months(pd.Series([protections["ends_at"].max()]), 12).iloc[0])
    legacy_proj = project_usage(_only(legacy, chosen), end)
    new_proj = project_usage(_only(plan.snapshot, chosen), end)
    legacy_invoices = price(legacy_proj, rollout.catalogs.legacy, start, end).invoices
    new_invoices = price(new_proj, target_price_catalog(rollout), start, end).invoices
    out = protection_discounts(protections, legacy_invoices, new_invoices)
    return out.sort_values(["subscription_id", "starts_at"], kind="stable").reset_index(drop=True)


def _protection(
    plan: Plan, rollout: Rollout, legacy: Snapshot, batch: _Batch
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], dict[str, str]]:
    """Price protection coupons as discount rows, their params, and per subscription the
    metadata text of its directive."""
    prot = plan.protections[
        isin(plan.protections["subscription_id"], batch.subs["subscription_id"])
    ]
    notes: dict[str, str] = {}
    empty = pd.DataFrame(
        {
            "sub": pd.Series(dtype=np.int64),
            "item_id": pd.Series(dtype="string"),
            "coupon": pd.Series(dtype="string"),
            "first_us": pd.Series(dtype=np.int64),
            "end_us": pd.Series(dtype=np.int64),
        }
    )
    if prot.empty:
        return empty, {}, notes
    rows = projected_protection(plan, rollout, legacy, prot["subscription_id"])
    for r in _records(prot):
        start = pd.Timestamp(r["starts_at"]).strftime("%Y-%m-%d")
        notes[str(r["subscription_id"])] = (
            f"increase capped at {r['max_increase_percent']}% for {r['months']} months from {start}"
        )
    with_coupon = set(rows["subscription_id"].astype(str))
    for sid in notes:
        if sid in with_coupon:
            notes[sid] += f"; coupon {PROTECTION_COUPON_PREFIX}{sid}"
        else:
            notes[sid] += "; no excess projected, no coupon"
    if rows.empty:
        return empty, {}, notes
    first = rows.groupby("subscription_id", sort=True).agg(
        first=("starts_at", "min"), last=("starts_at", "max"), amount=("amount_off", "first")
    )
    protected = [str(s) for s in first.index]
    sub = positions(pd.Series(protected, dtype="string"), batch.subs["subscription_id"])
    last_us = to_us(first["last"], NEVER) + 1
    dur = _durations(batch, sub, to_us(first["first"], NEVER), last_us)
    frame = pd.DataFrame(
        {
            "sub": sub,
            "item_id": pd.array([pd.NA] * len(sub), dtype="string"),
            "coupon": pd.array([PROTECTION_COUPON_PREFIX + s for s in protected], dtype="string"),
            "first_us": dur.first_us,
            "end_us": last_us,
        }
    )
    params: dict[str, dict[str, Any]] = {}
    groups = rows.groupby("subscription_id", sort=True)[["starts_at", "amount_off"]]
    for i, (s, group) in enumerate(groups):
        cid = PROTECTION_COUPON_PREFIX + str(s)
        currency = str(batch.subs["currency"].iloc[sub[i]])
        amount = int(first["amount"].iloc[i])
        p = _coupon_params(
            cid, None, None, amount, currency, int(dur.invoices[i]), int(dur.months[i])
        )
        p["name"] = "Price protection"
        values = group["amount_off"].astype("int64").tolist()
        if len(set(values)) > 1:
            text = " ".join(
                f"{t:%Y-%m-%d}:{v}" for t, v in zip(group["starts_at"], values, strict=True)
            )
            p["metadata"]["shadowbill_projected_amounts"] = text[:_METADATA_TEXT_MAX]
        params[cid] = p
    return frame, params, notes
