"""A structured legacy-vs-new diff of one subscription, for the per-customer view of a report.

Both sides are reduced to the same plain shape (items by price id, discounts by id, the
scheduled changes after the current state) and compared with deepdiff; everything
returned is JSON-able.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from deepdiff import DeepDiff

from shadowbill.errors import PlanError
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.plan import Plan

OPEN = "open"


def _iso(value: Any) -> str:
    if value is None or pd.isna(value):
        return OPEN
    stamp = pd.Timestamp(value)
    if stamp == stamp.normalize():
        return stamp.strftime("%Y-%m-%d")
    return stamp.isoformat().replace("+00:00", "Z")


def _active_at(items: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    ok = (items["valid_from"] <= at) & (items["valid_to"].isna() | (items["valid_to"] > at))
    return items[ok.fillna(False).to_numpy(dtype=bool)]


def _view(
    items: pd.DataFrame, discounts: pd.DataFrame, at: pd.Timestamp, item_price: dict[str, str]
) -> dict[str, Any]:
    """Items active at ``at`` (quantity per price), discounts, and later item changes."""
    now = _active_at(items, at)
    quantities = now.groupby("price_id")["quantity"].sum()
    later = items[(items["valid_from"] > at).fillna(False).to_numpy(dtype=bool)]
    later = later.sort_values(["valid_from", "price_id"], kind="stable")
    return {
        "items": {str(p): int(q) for p, q in quantities.items()},
        "discounts": {
            str(d["discount_id"]): _discount(d, item_price)
            for d in discounts.to_dict("records")  # one subscription: a handful of rows
        },
        "schedule": [
            {
                "at": _iso(r["valid_from"]),
                "price_id": str(r["price_id"]),
                "quantity": int(r["quantity"]),
            }
            for r in later.to_dict("records")
        ],
    }


def _discount(d: dict[Any, Any], item_price: dict[str, str]) -> dict[str, Any]:
    item = d["item_id"]
    return {
        "applies_to": "subscription" if pd.isna(item) else item_price.get(str(item), str(item)),
        "percent_off": None if pd.isna(d["percent_off"]) else str(d["percent_off"]),
        "amount_off": None if pd.isna(d["amount_off"]) else int(d["amount_off"]),
        "starts_at": _iso(d["starts_at"]),
        "ends_at": _iso(d["ends_at"]),
    }


def _step(r: dict[Any, Any]) -> str:
    """``pro_month_v2 x10 -> advanced_month x10 (mapped)``."""
    legacy = (
        "+" if pd.isna(r["legacy_price_id"]) else f"{r['legacy_price_id']} x{r['legacy_quantity']}"
    )
    new = "-" if pd.isna(r["new_price_id"]) else f"{r['new_price_id']} x{r['new_quantity']}"
    note = f": {r['note']}" if r["note"] else ""
    return f"{legacy} -> {new} ({r['change']}{note})"


def plan_diff(plan: Plan, snapshot: Snapshot, subscription_id: str) -> dict[str, Any]:
    """Legacy vs new for one subscription of the plan's cohort: both views and their diff.

    Returns ``subscription_id``, ``customer_id``, ``phase``, ``status`` ("mapped" or
    "unmapped"), ``rule_id``, ``cutover_at``, ``reason``/``detail`` (unmapped only),
    ``legacy`` and ``new`` (items, discounts, schedule; ``new`` is None when unmapped),
    ``lineage`` (readable "legacy -> new" steps of the current state) and ``changes``
    (deepdiff of legacy vs new, JSON-able).
    """
    assigned = plan.assignments[plan.assignments["subscription_id"] == subscription_id]
    unmapped = plan.unmapped[plan.unmapped["subscription_id"] == subscription_id]
    if assigned.empty and unmapped.empty:
        raise PlanError(
            f"subscription {subscription_id!r} is not in the cohort of phase {plan.phase}"
        )
    legacy_items = snapshot["subscription_items"]
    legacy_items = legacy_items[legacy_items["subscription_id"] == subscription_id]
    open_rows = legacy_items[legacy_items["valid_to"].isna().to_numpy(dtype=bool)]
    at = open_rows["valid_from"].max() if len(open_rows) else legacy_items["valid_from"].max()
    legacy_discounts = snapshot["discounts"]
    legacy_discounts = legacy_discounts[legacy_discounts["subscription_id"] == subscription_id]
    legacy_prices = dict(
        zip(legacy_items["item_id"].astype(str), legacy_items["price_id"].astype(str), strict=True)
    )
    legacy = _view(legacy_items, legacy_discounts, at, legacy_prices)
    out: dict[str, Any] = {
        "subscription_id": subscription_id,
        "phase": plan.phase,
        "legacy": legacy,
    }
    if assigned.empty:
        row = unmapped.iloc[0]
        out.update(
            customer_id=str(row["customer_id"]),
            status="unmapped",
            rule_id=None,
            cutover_at=None,
            reason=str(row["reason"]),
            detail=str(row["detail"]),
            new=None,
            lineage=[],
            changes={},
        )
        return out
    row = assigned.iloc[0]
    new_items = plan.snapshot["subscription_items"]
    new_items = new_items[new_items["subscription_id"] == subscription_id]
    new_discounts = plan.snapshot["discounts"]
    new_discounts = new_discounts[new_discounts["subscription_id"] == subscription_id]
    new_prices = dict(
        zip(new_items["item_id"].astype(str), new_items["price_id"].astype(str), strict=True)
    )
    new = _view(new_items, new_discounts, at, new_prices)
    lineage = plan.lineage[
        (plan.lineage["subscription_id"] == subscription_id) & (plan.lineage["valid_from"] == at)
    ]
    steps = [_step(r) for r in lineage.to_dict("records")]
    diff = DeepDiff(legacy, new, verbose_level=2, threshold_to_diff_deeper=0)
    out.update(
        customer_id=str(row["customer_id"]),
        status="mapped",
        rule_id=str(row["rule_id"]),
        cutover_at=_iso(row["cutover_at"]),
        new=new,
        lineage=steps,
        changes=json.loads(diff.to_json()),
    )
    return out
