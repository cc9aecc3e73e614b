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

Tax, per the target catalog's ``tax_mode``: ``computed``: the catalog's tax rate for the
customer's country becomes the subscription's ``default_tax_rates`` unless the customer is
tax exempt (``tax_exempt = exempt`` on the customer); ``external`` (Stripe Tax or an
outside engine's connector): ``automatic_tax[enabled] = true`` and never a manual rate,
with the customer's address (``line1``, ``city``, ``postal_code``, ``state``, ``country``
from the customer columns address_line1, address_city, address_postal_code and
address_state when the snapshot has them); ``none``: no tax rate at all.

Customers. A legacy customer ``links`` names (an existing Stripe customer, see
:mod:`shadowbill.targets.customer_links`) is attached, never created: its operation has
``lookup = {"attach": "cus_..."}`` and the subscription is created on it. Every other
customer is created.

Settings per subscription: ``collection_method`` (and ``days_until_due`` for
``send_invoice``, :mod:`shadowbill.targets.collection_terms`) and ``billing_mode`` (the
target catalog's, explicit, since Stripe's default changed with API 2025-09-30.clover).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.errors import OperationsError
from shadowbill.pricing.catalog import Catalog, TaxMode
from shadowbill.pricing.periods import (
    OPEN,
)
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.batch_frames import (
    _METADATA_TEXT_MAX,
    _Batch,
    _batch,
    _chosen,
    _discounts,
    _items,
    _records,
)
from shadowbill.targets.catalog_ops import (
    METADATA_KEY,
    catalog_operations,
    coupon_key,
    operation,
    price_key,
    refs_in,
    tax_rate_key,
)
from shadowbill.targets.collection_terms import subscription_terms
from shadowbill.targets.cutover_facts import (
    FACT_COLUMNS,
    _seconds,
    cutover_facts,
)
from shadowbill.targets.model import KIND_ORDER, Operation, ref
from shadowbill.targets.price_protection import (
    PROTECTION_COUPON_PREFIX,
    _protection,
    projected_protection,
)
from shadowbill.targets.schedule_phases import (
    _phase_discounts,
    _phase_items,
    _phases,
)
from shadowbill.translate.keys import positions
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Rollout, target_price_catalog

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "FACT_COLUMNS",
    "PROTECTION_COUPON_PREFIX",
    "OperationsError",
    "build_operations",
    "cutover_facts",
    "projected_protection",
    "subscription_operations",
    "unresolved_refs",
]


ADDRESS_FIELDS: Final[dict[str, str]] = {
    "line1": "address_line1",
    "city": "address_city",
    "postal_code": "address_postal_code",
    "state": "address_state",
}


def _address(r: dict[str, Any]) -> dict[str, str]:
    """Stripe's customer ``address`` from the canonical columns the row has."""
    out = {k: str(r[c]) for k, c in ADDRESS_FIELDS.items() if _present(r.get(c))}
    if _present(r.get("country")):
        out["country"] = str(r["country"]).upper()
    return out


def _customer_operations(
    plan: Plan, batch: _Batch, batch_id: str, links: Mapping[str, str]
) -> tuple[list[Operation], dict[str, bool]]:
    """Per batch customer: attach the existing Stripe customer ``links`` names, else create one."""
    customers = plan.snapshot["customers"]
    ids = batch.subs["customer_id"].drop_duplicates()
    rows = customers.iloc[positions(ids, customers["customer_id"])]
    ops: list[Operation] = []
    exempt: dict[str, bool] = {}
    for r in _records(rows.sort_values("customer_id")):
        cid = str(r["customer_id"])
        key = f"customer:{cid}"
        tax_exempt = _present(r["tax_exempt"]) and bool(r["tax_exempt"])
        exempt[cid] = tax_exempt
        address = _address(r)
        if cid in links:
            # an existing customer: only found, never created or changed (but for an
            # address it lacks); its default payment method stays as it is
            attach = {"address": address} if address else {}
            ops.append(
                operation(
                    batch_id, key, "customer", attach, {"attach": links[cid]}, customer_id=cid
                )
            )
            continue
        params: dict[str, Any] = {
            "name": str(r["name"]),
            "metadata": {"legacy_customer_id": cid, METADATA_KEY: key},
            "tax_exempt": "exempt" if tax_exempt else "none",
        }
        if _present(r["email"]):
            params["email"] = str(r["email"])
        if address:
            params["address"] = address
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
    return ops, exempt


def _tax_rates(
    plan: Plan, batch: _Batch, catalog: Catalog, exempt: dict[str, bool]
) -> dict[str, str]:
    """Customer id -> the target catalog's tax rate id for the customer (absent: none).

    Only a catalog whose tax is ``computed`` sets manual tax rates: with ``external`` tax
    (Stripe Tax or a connector) and ``none``, no subscription carries a tax rate.
    """
    if catalog.tax_mode != TaxMode.COMPUTED:
        return {}
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
    settings: Mapping[str, Any],
) -> Operation:
    """``settings``: collection method (and days until due), ``automatic_tax`` and
    ``billing_mode``, the same for every phase."""
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
            **settings,
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
                **_phase_settings(settings),
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
        if "billing_mode" in settings:
            params["billing_mode"] = settings["billing_mode"]
    return operation(
        batch_id,
        key,
        kind,
        params,
        {f"metadata.{METADATA_KEY}": key},
        subscription_id=sid,
        customer_id=customer_id,
    )


def _phase_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule phase's form of the settings (days until due under invoice_settings)."""
    out = {k: v for k, v in settings.items() if k in ("collection_method", "automatic_tax")}
    if "days_until_due" in settings:
        out["invoice_settings"] = {"days_until_due": settings["days_until_due"]}
    return out


def _settings(catalog: Catalog, terms: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per subscription id: collection method and terms, automatic tax, billing mode."""
    base: dict[str, Any] = {"billing_mode": {"type": str(catalog.billing_mode)}}
    if catalog.tax_mode == TaxMode.EXTERNAL:
        # Stripe Tax (or a connector) computes the tax; never a manual rate beside it
        # (https://docs.stripe.com/billing/taxes/collect-taxes)
        base["automatic_tax"] = {"enabled": True}
    out: dict[str, dict[str, Any]] = {}
    for sid, method, days in zip(
        terms["subscription_id"], terms["collection_method"], terms["days_until_due"], strict=True
    ):
        entry = {**base, "collection_method": str(method)}
        if _present(days):
            entry["days_until_due"] = int(days)
        out[str(sid)] = entry
    return out


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
    links: Mapping[str, str] | None = None,
) -> list[Operation]:
    """The operations that create a batch on Stripe, in dependency order (KIND_ORDER, key).

    ``subscription_ids`` limits the batch to some of the plan's mapped subscriptions
    (default: all). Only the catalog objects these subscriptions use are included.
    ``links`` (legacy customer id -> existing Stripe customer id, from
    :func:`~shadowbill.targets.customer_links.link_customers`) attaches those customers
    instead of creating them. The same inputs always give the same list.
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

    customer_ops, exempt = _customer_operations(plan, batch, batch_id, dict(links or {}))
    tax_rates = _tax_rates(plan, batch, catalog, exempt)
    terms = subscription_terms(
        batch.subs["subscription_id"],
        plan.snapshot["subscriptions"],
        plan.snapshot["customers"],
        rollout.spec.billing_terms,
    )
    settings = _settings(catalog, terms)
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
                settings[str(sid)],
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
