"""The new model's canonical tables for the mapped subscriptions of a phase.

New items get the id ``<subscription_id>:<price_id>`` (Stripe allows one item per price
in a subscription) and a history merged from the segments: consecutive segments with the
same price and quantity become one row. Discounts are carried, or cut at the cut-over
when the policy is ``drop``; a line discount follows its legacy item to the new item
that replaced it, and is lost with an item that was dropped.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.snapshot.tables import QUARANTINE, TABLES, Snapshot, empty_frame, pandas_dtype
from shadowbill.translate.keys import isin
from shadowbill.translate.phase_mapping import PhaseMapping
from shadowbill.translate.plan import LINEAGE_COLUMNS, TS, pin

BoolArray = npt.NDArray[np.bool_]


def canonical(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with exactly the table's pinned columns and dtypes."""
    t = TABLES[table]
    out = frame[t.column_names]
    current = {c: str(d) for c, d in out.dtypes.items()}
    differ = {
        c.name: pandas_dtype(c.type) for c in t.columns if current[c.name] != pandas_dtype(c.type)
    }
    return (out.astype(differ) if differ else out).reset_index(drop=True)


@cache
def _empty(table: str) -> pd.DataFrame:
    return empty_frame(QUARANTINE if table == QUARANTINE.name else TABLES[table])


def empty_table(table: str) -> pd.DataFrame:
    """An empty canonical table (built once per process, copied on each use)."""
    return _empty(table).copy()


def new_item_ids(subscription_id: pd.Series, price_id: pd.Series) -> pd.Series:
    """``<subscription_id>:<price_id>``: one item per price per subscription."""
    return (subscription_id.astype("string") + ":" + price_id.astype("string")).astype("string")


def coalesce_items(rows: pd.DataFrame) -> pd.DataFrame:
    """Item history rows from per-segment new items: consecutive segments of the same
    price with the same quantity merge into one row (subscription_items columns)."""
    if rows.empty:
        return empty_table("subscription_items")
    price = pd.factorize(rows["price_id"], sort=True)[0]
    sub = rows["sub"].to_numpy(dtype=np.int64)
    start = rows["start"].dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    order = np.lexsort((start, price, sub))
    rows = rows.iloc[order].reset_index(drop=True)
    same_item = np.zeros(len(rows), dtype=bool)
    same_item[1:] = (np.diff(sub[order]) == 0) & (np.diff(price[order]) == 0)
    contiguous = (rows["end"].shift(1) == rows["start"]).fillna(False).to_numpy(dtype=bool)
    same_qty = (rows["quantity"].shift(1) == rows["quantity"]).fillna(False).to_numpy(dtype=bool)
    new_run = ~(same_item & contiguous & same_qty)
    last = np.append(new_run[1:], True)
    firsts = rows[new_run].reset_index(drop=True)
    ends = rows.loc[last, "end"].reset_index(drop=True)
    return pd.DataFrame(
        {
            "item_id": new_item_ids(firsts["subscription_id"], firsts["price_id"]),
            "subscription_id": firsts["subscription_id"].astype("string"),
            "price_id": firsts["price_id"].astype("string"),
            "quantity": firsts["quantity"].astype("Int64"),
            "valid_from": firsts["start"].astype(TS),
            "valid_to": ends.astype(TS),
        }
    )


def lineage_frame(pm: PhaseMapping, mapped: BoolArray) -> pd.DataFrame:
    """Legacy row -> new item per segment of the mapped subscriptions (LINEAGE_COLUMNS).

    ``mapped`` is aligned with ``pm.cohort``.
    """
    lineage = pm.applied.lineage
    lineage = lineage[mapped[pm.seg_sub[lineage["seg"].to_numpy()]]].reset_index(drop=True)
    seg = lineage["seg"].to_numpy()
    where = pm.segments.frame[["subscription_id", "start", "end"]].iloc[seg]
    lineage = pd.concat([lineage, where.reset_index(drop=True)], axis=1)
    quantities = pm.applied.new_items[["seg", "price_id", "quantity"]].rename(
        columns={"price_id": "new_price_id", "quantity": "new_quantity"}
    )
    lineage = lineage.merge(quantities, on=["seg", "new_price_id"], how="left")
    rule_ids = np.array([r.id for r in pm.phase.rules] + [""], dtype=object)
    lineage["rule_id"] = pd.array(rule_ids[pm.seg_rule[seg]], dtype="string")
    lineage["new_item_id"] = new_item_ids(lineage["subscription_id"], lineage["new_price_id"])
    lineage = lineage.rename(columns={"start": "valid_from", "end": "valid_to"})
    lineage = lineage.sort_values(["subscription_id", "valid_from", "seg"], kind="stable")
    return pin(lineage, LINEAGE_COLUMNS)


def _successors(lineage: pd.DataFrame, item_ids: pd.Series) -> pd.DataFrame:
    """For each legacy item of ``item_ids``, the new item its line discounts follow: its
    latest successor."""
    has = lineage["new_item_id"].notna() & lineage["legacy_item_id"].notna()
    wanted = has.to_numpy(dtype=bool) & isin(lineage["legacy_item_id"], item_ids.dropna())
    succ = lineage[wanted].reset_index(drop=True)
    sub_code = pd.factorize(succ["subscription_id"])[0]
    item_code = pd.factorize(succ["legacy_item_id"])[0]
    start = (
        succ["valid_from"].dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64)
    )
    order = np.lexsort((np.arange(len(succ)), -start, item_code, sub_code))
    succ = succ.iloc[order]
    first = np.ones(len(succ), dtype=bool)
    first[1:] = (np.diff(sub_code[order]) != 0) | (np.diff(item_code[order]) != 0)
    succ = succ[first]
    return succ[["subscription_id", "legacy_item_id", "new_item_id"]].rename(
        columns={"legacy_item_id": "item_id"}
    )


def carry_discounts(
    legacy: pd.DataFrame, assignments: pd.DataFrame, lineage: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The new discounts rows, and per subscription how many discounts active at or after
    the cut-over were carried and dropped (subscription_id, discounts_carried,
    discounts_dropped)."""
    d = legacy.merge(
        assignments[["subscription_id", "cutover_at", "discounts_policy"]], on="subscription_id"
    )
    successors = _successors(lineage, legacy["item_id"])
    d = d.merge(successors, on=["subscription_id", "item_id"], how="left")
    orphan = d["item_id"].notna().to_numpy() & d["new_item_id"].isna().to_numpy()
    d["item_id"] = d["new_item_id"].astype("string")
    drop = (d["discounts_policy"] == "drop").to_numpy(dtype=bool)
    starts_after = (d["starts_at"] >= d["cutover_at"]).fillna(False).to_numpy(dtype=bool)
    runs_past = (d["ends_at"].isna() | (d["ends_at"] > d["cutover_at"])).fillna(True)
    runs_past_arr = runs_past.to_numpy(dtype=bool)
    keep = ~orphan & ~(drop & starts_after)
    cut = keep & drop & runs_past_arr
    d.loc[cut, "ends_at"] = d.loc[cut, "cutover_at"]
    carried = runs_past_arr & keep & ~drop
    counts = (
        pd.DataFrame(
            {
                "subscription_id": d["subscription_id"],
                "discounts_carried": carried.astype(np.int64),
                "discounts_dropped": (runs_past_arr & ~carried).astype(np.int64),
            }
        )
        .groupby("subscription_id", as_index=False)
        .sum()
    )
    return canonical("discounts", d[keep]), counts


def new_snapshot(
    snapshot: Snapshot,
    pm: PhaseMapping,
    mapped: BoolArray,
    assignments: pd.DataFrame,
    lineage: pd.DataFrame,
) -> tuple[Snapshot, pd.DataFrame]:
    """The new model's snapshot of the mapped subscriptions, and the discount counts.

    ``mapped`` is aligned with ``pm.cohort``.
    """
    rows = pm.new_rows
    items = coalesce_items(rows[mapped[rows["sub"].to_numpy()]])
    ids = assignments["subscription_id"]
    discounts = snapshot["discounts"]
    discounts, counts = carry_discounts(
        discounts[isin(discounts["subscription_id"], ids)], assignments, lineage
    )
    subs = snapshot["subscriptions"]
    customers = snapshot["customers"]
    usage = snapshot["usage"]
    tables = {
        "customers": canonical(
            "customers", customers[isin(customers["customer_id"], assignments["customer_id"])]
        ),
        "subscriptions": canonical("subscriptions", subs[isin(subs["subscription_id"], ids)]),
        "subscription_items": canonical("subscription_items", items),
        "discounts": discounts,
        "usage": canonical("usage", usage[isin(usage["subscription_id"], ids)]),
        "tax_rates": canonical("tax_rates", snapshot["tax_rates"]),
        "invoices": empty_table("invoices"),
        "invoice_lines": empty_table("invoice_lines"),
    }
    ordered = {name: tables[name] for name in TABLES}
    return Snapshot(ordered, quarantine=empty_table(QUARANTINE.name)), counts
