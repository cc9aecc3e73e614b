"""A translated batch as the list of operations that create it on Stripe.

:func:`build_operations` turns the subscriptions of a migration batch (a plan's
assignments, or some of them) into :class:`~shadowbill.targets.model.Operation` in
dependency order: the catalog objects the batch uses (products, billing meters, prices,
the coupons of its discounts and price protection, tax rates), then per subscription its
customer and its subscription, or its subscription schedule when its future has more
than one phase. Every target consumes this one list (Stripe API, Stripe's migration CSV,
JSONL for review).

Timing (no gap, no overlap, no double charge). Stripe's migration guides say to create
the new subscription before the old one charges again and to start billing where the
legacy billing stops: "Migrate subscriptions to Stripe Billing using toolkit"
(https://docs.stripe.com/billing/subscriptions/import-subscriptions-toolkit, use case
"Migrate a paid subscription that's in the middle of a billing period": set
``billing_cycle_anchor`` to the upcoming renewal date and ``proration_behavior`` to
``none``), "Set the subscription billing renewal date"
(https://docs.stripe.com/billing/subscriptions/billing-cycle: with a future anchor and
``proration_behavior=none`` the time before the anchor is free, the first full invoice
is on the anchor) and "Migrate subscriptions using Stripe APIs"
(https://docs.stripe.com/billing/subscriptions/import-subscriptions: subscription
schedules with a ``start_date`` when a subscription's future has phases). So:

- the legacy **paid-through** instant of a subscription (:func:`cutover_facts`) is the
  end of the last legacy billing period: the latest of its last issued invoice's
  ``period_end`` in the legacy snapshot and the last legacy period boundary at or before
  its cut-over (the legacy engine keeps billing until the cut-over; in a snapshot taken
  at the cut-over both are the same instant); ``subscriptions.current_period_end`` when
  neither is known;
- a subscription starts its first target period there: ``billing_cycle_anchor`` =
  paid-through, ``proration_behavior = none``; a schedule's ``start_date`` = paid-through;
- Stripe requires the anchor to be in the future and before the next natural billing
  date, so the operations are applied within one billing interval before paid-through.
  Stripe anchors later periods on the anchor's day of month; a legacy anchor on the
  29th-31st whose paid-through fell on a shorter month continues on that shorter day.

Phases. A subscription's target future is cut at every item-history change after
paid-through (a phase 3 switch from a kept legacy price to a new price, a seat change),
at the first billing period a later-starting discount applies to, and at the first
protected period of price protection. One phase gives a ``subscription``; more give a
``subscription_schedule`` (``end_behavior = release``) whose phases list their
``items`` (price and quantity, no quantity for metered prices), ``discounts``,
``default_tax_rates`` and ``end_date``. A phase starting on a billing-period boundary
has ``proration_behavior = none``; one starting inside a period (a dated, not
renewal-aligned change) ``create_prorations``, as the new model prorates it.

Discounts. The plan's snapshot already holds the discounts the rollout's policy keeps
(``carry``: as they were; ``drop``: ended at the cut-over). Every discount row that
still applies to a target invoice becomes a coupon reference: on the subscription, or on
its item for a line discount (``items[].discounts``). A Stripe coupon's duration is a
property of the coupon, so its id says it: ``<legacy coupon id>[_<CUR>]_<FOREVER|ONCE|
<n>M>`` (the currency for amount-off coupons; ``SB_PCT12_5`` / ``SB_AMT800`` when the
legacy row has no coupon id): ``forever`` when the discount never ends, ``once`` when it
covers one target invoice, else ``repeating`` for the months from its first to its last
target invoice (Stripe counts from when the discount is applied; the toolkit reference
recommends per-subscription durations for discounts that must expire on their dates).

Price protection. Stripe cannot express "cap the invoice at legacy x (1 + p%)": a coupon
is a fixed ``percent_off`` or ``amount_off``. The cap is priced once with the
reconciler's own projection (:func:`shadowbill.pricing.protection.protection_discounts`
over usage carried forward): when it projects an excess, the subscription gets the
coupon ``pp_<subscription_id>``: ``amount_off`` = the excess of the first protected
invoice in the subscription's currency, ``repeating`` over the protected invoices (from
the first to the last with an excess), applied from the first protected period. When the
projected excess varies between invoices, Stripe repeats the first amount; the coupon's
metadata ``shadowbill_projected_amounts`` lists every projected amount so comparison C
explains the difference. When no excess is projected no coupon is made; the directive is
kept in the subscription's metadata ``shadowbill_price_protection`` either way. Real usage
above the projection is not capped on Stripe.

Tax. The target catalog's tax rate for the customer's country becomes the
subscription's ``default_tax_rates`` unless the customer is tax exempt
(``tax_exempt = exempt`` on the customer).
"""

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
from shadowbill.pricing.engine import price
from shadowbill.pricing.periods import (
    NEVER,
    OPEN,
    Cadence,
    cadence,
    first_start_at_or_after,
    months_between,
    periods_before,
    to_us,
)
from shadowbill.pricing.projection import project_usage
from shadowbill.pricing.protection import protection_discounts
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.catalog_ops import (
    METADATA_KEY,
    catalog_operations,
    coupon_key,
    is_metered,
    operation,
    price_key,
    refs_in,
    tax_rate_key,
)
from shadowbill.targets.model import KIND_ORDER, Operation, ref
from shadowbill.translate.keys import isin, positions
from shadowbill.translate.plan import TS, Plan
from shadowbill.translate.renewal import add_months
from shadowbill.translate.rollout import Rollout, target_price_catalog

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

FACT_COLUMNS: Final[dict[str, str]] = {
    "subscription_id": "string",
    "customer_id": "string",
    "paid_through": TS,
    "first_target_period_start": TS,
    "first_target_period_end": TS,
}
PROTECTION_COUPON_PREFIX: Final = "pp_"
_US: Final = 1_000_000
_METADATA_TEXT_MAX: Final = 500  # Stripe's limit on a metadata value


# ------------------------------------------------------------------ timestamps ----


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
    return Cadence(months=steps.months[index], fixed_us=steps.fixed_us[index])


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


# ------------------------------------------------------------------ cut-over facts ----


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


# ------------------------------------------------------------------ batch frames ----


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


# ------------------------------------------------------------------ price protection ----


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


# ------------------------------------------------------------------ phases ----


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


# ------------------------------------------------------------------ build ----


def _customer_operations(
    plan: Plan, batch: _Batch, batch_id: str
) -> tuple[list[Operation], dict[str, bool]]:
    customers = plan.snapshot["customers"]
    ids = batch.subs["customer_id"].drop_duplicates()
    rows = customers.iloc[positions(ids, customers["customer_id"])]
    ops: list[Operation] = []
    exempt: dict[str, bool] = {}
    for r in _records(rows.sort_values("customer_id")):
        cid = str(r["customer_id"])
        key = f"customer:{cid}"
        tax_exempt = _present(r["tax_exempt"]) and bool(r["tax_exempt"])
        params: dict[str, Any] = {
            "name": str(r["name"]),
            "metadata": {"legacy_customer_id": cid, METADATA_KEY: key},
            "tax_exempt": "exempt" if tax_exempt else "none",
        }
        if _present(r["email"]):
            params["email"] = str(r["email"])
        if _present(r["country"]):
            params["address"] = {"country": str(r["country"]).upper()}
        ops.append(
            operation(
                batch_id,
                key,
                "customer",
                params,
                {f"metadata.{METADATA_KEY}": key},
                customer_id=cid,
            )
        )
        exempt[cid] = tax_exempt
    return ops, exempt


def _tax_rates(
    plan: Plan, batch: _Batch, catalog: Catalog, exempt: dict[str, bool]
) -> dict[str, str]:
    """Customer id -> the target catalog's tax rate id for the customer (absent: none)."""
    customers = plan.snapshot["customers"]
    country_of = dict(
        zip(
            customers["customer_id"].astype(str), customers["country"].astype("string"), strict=True
        )
    )
    out: dict[str, str] = {}
    for cid in sorted(set(batch.subs["customer_id"].astype(str))):
        if exempt.get(cid, False):
            continue
        country = country_of.get(cid)
        rate = catalog.tax_rate_for(str(country)) if _present(country) else None
        if rate is not None:
            out[cid] = rate.id
    return out


def _discount_list(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"coupon": ref(coupon_key(r["coupon"]))} for r in rows]


def _phase_body(
    items: list[dict[str, Any]], discounts: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    by_item: dict[str, list[dict[str, Any]]] = {}
    whole: list[dict[str, Any]] = []
    for d in discounts:
        if not _present(d["item_id"]):
            whole.append(d)
        else:
            by_item.setdefault(str(d["item_id"]), []).append(d)
    out = []
    for it in items:
        entry: dict[str, Any] = {"price": ref(price_key(str(it["price_id"])))}
        if not it["metered"]:
            entry["quantity"] = int(it["quantity"])
        line = by_item.get(str(it["item_id"]), [])
        if line:
            entry["discounts"] = _discount_list(line)
        out.append(entry)
    return out, _discount_list(whole)


def _group(frame: pd.DataFrame) -> dict[tuple[int, int], list[dict[str, Any]]]:
    out: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for rec in _records(frame):
        out.setdefault((int(rec["sub"]), int(rec["phase"])), []).append(rec)
    return out


def _subscription_operation(
    batch_id: str,
    sid: str,
    customer_id: str,
    currency: str,
    phases: list[dict[str, Any]],
    tax_rate: str | None,
    note: str | None,
) -> Operation:
    kind = "subscription" if len(phases) == 1 else "subscription_schedule"
    key = f"{kind}:{sid}"
    metadata = {"legacy_subscription_id": sid, "shadowbill_batch": batch_id, METADATA_KEY: key}
    if note:
        metadata["shadowbill_price_protection"] = note[:_METADATA_TEXT_MAX]
    taxes = [ref(tax_rate_key(tax_rate))] if tax_rate else []
    customer = ref(f"customer:{customer_id}")
    if kind == "subscription":
        only = phases[0]
        params: dict[str, Any] = {
            "customer": customer,
            "currency": currency,
            "items": only["items"],
            "billing_cycle_anchor": _seconds(only["start_us"]),
            "proration_behavior": "none",
            "metadata": metadata,
        }
        if taxes:
            params["default_tax_rates"] = taxes
        if only["discounts"]:
            params["discounts"] = only["discounts"]
    else:
        body = []
        for ph in phases:
            entry: dict[str, Any] = {
                "items": ph["items"],
                "currency": currency,
                "proration_behavior": ph["proration_behavior"],
                "metadata": dict(metadata),
            }
            if ph["end_us"] != OPEN:
                entry["end_date"] = _seconds(ph["end_us"])
            if taxes:
                entry["default_tax_rates"] = list(taxes)
            if ph["discounts"]:
                entry["discounts"] = ph["discounts"]
            body.append(entry)
        params = {
            "customer": customer,
            "start_date": _seconds(phases[0]["start_us"]),
            "end_behavior": "release",
            "phases": body,
            "metadata": metadata,
        }
    return operation(
        batch_id,
        key,
        kind,
        params,
        {f"metadata.{METADATA_KEY}": key},
        subscription_id=sid,
        customer_id=customer_id,
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def _present(value: Any) -> bool:
    """Not missing and not empty text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return False
    if isinstance(value, float) and value != value:
        return False
    return str(value) != ""


def _sorted(ops: list[Operation]) -> list[Operation]:
    order = {kind: i for i, kind in enumerate(KIND_ORDER)}
    seen: dict[str, Operation] = {}
    for op in ops:
        other = seen.get(op.key)
        if other is not None and other != op:
            raise OperationsError(f"two different operations share the key {op.key}")
        seen[op.key] = op
    out = sorted(seen.values(), key=lambda o: (order[o.kind], o.key))
    done: set[str] = set()
    for op in out:
        for dep in op.depends_on:
            if dep not in done:
                raise OperationsError(
                    f"operation {op.key} refers to {dep}, which no earlier operation creates"
                )
        done.add(op.key)
    return out


def build_operations(
    plan: Plan,
    rollout: Rollout,
    legacy: Snapshot,
    *,
    batch_id: str,
    subscription_ids: Sequence[str] | None = None,
) -> list[Operation]:
    """The operations that create a batch on Stripe, in dependency order (KIND_ORDER, key).

    ``subscription_ids`` limits the batch to some of the plan's mapped subscriptions
    (default: all). Only the catalog objects these subscriptions use are included.
    The same inputs always give the same list.
    """
    if not batch_id:
        raise OperationsError("a batch needs a non-empty batch id")
    catalog = target_price_catalog(rollout)
    chosen = _chosen(plan, subscription_ids)
    if chosen.empty:
        return []
    batch = _batch(plan, legacy, chosen)
    items = _items(plan, batch, catalog)
    discounts, coupon_params = _discounts(plan, batch)
    protection, protection_params, notes = _protection(plan, rollout, legacy, batch)
    coupon_params.update(protection_params)
    all_discounts = pd.concat([discounts, protection], ignore_index=True)
    phases = _phases(batch, items, all_discounts)
    phase_items = _phase_items(phases, items, batch)
    phase_discounts = _phase_discounts(phases, all_discounts)

    customer_ops, exempt = _customer_operations(plan, batch, batch_id)
    tax_rates = _tax_rates(plan, batch, catalog, exempt)
    ops = catalog_operations(
        batch_id, catalog, set(phase_items["price_id"]), set(tax_rates.values())
    )
    used_coupons = sorted(set(phase_discounts["coupon"].astype(str)))
    ops += [
        operation(batch_id, coupon_key(c), "coupon", coupon_params[c], {"id": c})
        for c in used_coupons
    ]
    ops += customer_ops

    items_of = _group(phase_items)
    discounts_of = _group(phase_discounts)
    by_sub: dict[int, list[dict[str, Any]]] = {}
    for ph in _records(phases):
        s, j = int(ph["sub"]), int(ph["phase"])
        body, whole = _phase_body(items_of.get((s, j), []), discounts_of.get((s, j), []))
        by_sub.setdefault(s, []).append(
            {
                "start_us": int(ph["start_us"]),
                "end_us": int(ph["end_us"]),
                "proration_behavior": str(ph["proration_behavior"]),
                "items": body,
                "discounts": whole,
            }
        )
    subs = batch.subs
    for s, (sid, cid, cur) in enumerate(
        zip(subs["subscription_id"], subs["customer_id"], subs["currency"], strict=True)
    ):
        ops.append(
            _subscription_operation(
                batch_id,
                str(sid),
                str(cid),
                str(cur),
                by_sub[s],
                tax_rates.get(str(cid)),
                notes.get(str(sid)),
            )
        )
    return _sorted(ops)


def subscription_operations(operations: Sequence[Operation]) -> list[Operation]:
    """The subscription and subscription schedule operations of a list, in order."""
    return [op for op in operations if op.kind in ("subscription", "subscription_schedule")]


def unresolved_refs(operations: Sequence[Operation]) -> list[tuple[str, str]]:
    """(operation key, referenced key) pairs whose reference no earlier operation creates."""
    done: set[str] = set()
    bad: list[tuple[str, str]] = []
    for op in operations:
        for key in refs_in(op.params):
            if key not in done:
                bad.append((op.key, key))
        done.add(op.key)
    return bad
