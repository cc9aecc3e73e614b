"""Comparison B, migration impact: legacy recomputed against the new model, with causes.

Every invoice's difference is split into causes that add up exactly to it:

- ``proration_method`` and ``rounding``: the legacy items priced once more under the new
  engine's rules (proration by the second, Stripe's rounding) minus the legacy price;
- per new item, from the plan's lineage: ``price_change`` (new price at the legacy
  quantity), ``quantity_transform`` (the rest of a mapped item's change),
  ``removed_item`` (legacy items with no successor, or a flat fee turned into usage) and
  ``new_usage_charge`` (new metered charges);
- ``discount_carried`` / ``discount_lost`` / ``price_protection`` from the discount lines;
- ``tax`` from the tax lines;
- ``unexplained``: whatever is left, which is zero unless a line cannot be traced to the
  plan. That is the number CI guards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shadowbill.money import decimal_to_scaled, mul_div_round
from shadowbill.reconcile.line_match import CHARGE_KINDS

_INV = ["subscription_id", "period_start"]
PROTECTION_PREFIX = "pp_"

CAUSE_ORDER = (
    "proration_method",
    "rounding",
    "price_change",
    "quantity_transform",
    "removed_item",
    "new_usage_charge",
    "discount_carried",
    "discount_lost",
    "price_protection",
    "tax",
    "unexplained",
)


@dataclass(frozen=True)
class Sides:
    """The three pricings comparison B needs, as (invoices, lines) frames."""

    legacy: tuple[pd.DataFrame, pd.DataFrame]  # legacy items, legacy catalog and engine
    legacy_new_rules: tuple[pd.DataFrame, pd.DataFrame]  # legacy items, new engine rules
    new: tuple[pd.DataFrame, pd.DataFrame]  # the plan, the target catalog


def _with_invoice(invoices: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    head = invoices[["invoice_id", "subscription_id", "period_start"]].rename(
        columns={"period_start": "invoice_start"}
    )
    return lines.merge(head, on="invoice_id", how="inner")


def _sum_lines(lines: pd.DataFrame, mask: pd.Series, name: str) -> pd.Series:
    picked = lines[mask]
    out = picked.groupby(["subscription_id", "invoice_start"])["amount"].sum()
    out.index = out.index.set_names(_INV)
    return out.rename(name)


def _segment_lookup(
    lines: pd.DataFrame, lineage: pd.DataFrame, item_col: str, at: pd.Series
) -> pd.DataFrame:
    """Each line's lineage rows: same subscription and item, segment containing ``at``."""
    left = lines.assign(_at=at.to_numpy(), _row=np.arange(len(lines)))
    right = lineage.rename(columns={item_col: "item_id"})
    joined = left[["_row", "subscription_id", "item_id", "_at"]].merge(
        right, on=["subscription_id", "item_id"], how="inner"
    )
    inside = (joined["valid_from"] <= joined["_at"]) & (
        joined["valid_to"].isna() | (joined["_at"] < joined["valid_to"])
    )
    return joined[inside.fillna(False)]


def _line_instant(lines: pd.DataFrame) -> pd.Series:
    """Which state of the item history a line bills: credits bill the state before."""
    at = lines["invoice_start"].copy()
    prorate = lines["kind"] == "proration"
    at[prorate] = lines.loc[prorate, "period_start"]
    credit = prorate & (lines["amount"] < 0)
    at[credit] = lines.loc[credit, "period_start"] - pd.Timedelta(microseconds=1)
    return at


def _charge_groups(legacy: pd.DataFrame, new: pd.DataFrame, lineage: pd.DataFrame) -> pd.DataFrame:
    """Charge amounts per (invoice, new item) on both sides, with the group's kind."""
    leg = legacy[legacy["kind"].isin(CHARGE_KINDS)].reset_index(drop=True)
    nw = new[new["kind"].isin(CHARGE_KINDS)].reset_index(drop=True)

    # Legacy line -> its primary successor (the first new item its row maps to).
    all_hits = _segment_lookup(leg, lineage, "legacy_item_id", _line_instant(leg))
    hits = all_hits[all_hits["new_item_id"].notna() & (all_hits["new_item_id"] != "")]
    primary = hits.sort_values(["_row", "new_item_id"]).drop_duplicates("_row")
    leg["group"] = pd.Series(pd.NA, index=leg.index, dtype="string")
    leg.loc[primary["_row"].to_numpy(), "group"] = primary["new_item_id"].to_numpy()
    lineage_rows = all_hits["_row"].unique()
    leg["removed"] = leg["group"].isna() & np.isin(np.arange(len(leg)), lineage_rows)

    # New line -> mapped (has a legacy source in its segment) or added.
    nhits = _segment_lookup(nw, lineage, "new_item_id", _line_instant(nw))
    sourced = nhits[nhits["legacy_item_id"].notna() & (nhits["legacy_item_id"] != "")]
    nw["group"] = nw["item_id"].astype("string")
    nw["has_source"] = np.isin(np.arange(len(nw)), sourced["_row"].unique())
    nw["untraced"] = ~np.isin(np.arange(len(nw)), nhits["_row"].unique())

    def agg(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
        f = frame.assign(
            usage=(frame["kind"] == "usage").astype(int),
            usage_amount=frame["amount"].where(frame["kind"] == "usage", 0).astype("int64"),
            rec_qty=frame["quantity"]
            .where(frame["kind"] == "recurring", 0)
            .fillna(0)
            .astype("int64"),
            rec_amount=frame["amount"].where(frame["kind"] == "recurring", 0).astype("int64"),
        )
        g = f.groupby(["subscription_id", "invoice_start", "group"], dropna=False).agg(
            amount=("amount", "sum"),
            usage=("usage", "max"),
            usage_amount=("usage_amount", "sum"),
            rec_qty=("rec_qty", "sum"),
            rec_amount=("rec_amount", "sum"),
        )
        return g.add_prefix(prefix)

    mapped_leg = leg[leg["group"].notna()]
    g_leg = agg(mapped_leg, "l_")
    g_new = agg(nw[nw["has_source"]], "n_")
    groups = g_leg.join(g_new, how="outer").fillna(0).reset_index()

    # The new side's unit price per recurring line, to price the legacy quantity.
    rec = nw[(nw["kind"] == "recurring") & nw["has_source"] & nw["unit_amount_decimal"].notna()]
    unit = rec.groupby(["subscription_id", "invoice_start", "group"])["unit_amount_decimal"].agg(
        ["first", "nunique"]
    )
    unit = unit[unit["nunique"] == 1]["first"].rename("n_unit").reset_index()
    groups = groups.merge(unit, on=["subscription_id", "invoice_start", "group"], how="left")

    removed = leg[leg["removed"]].groupby(["subscription_id", "invoice_start"])["amount"].sum()
    added = nw[~nw["has_source"] & ~nw["untraced"]]
    added_usage = (
        added[added["kind"] == "usage"]
        .groupby(["subscription_id", "invoice_start"])["amount"]
        .sum()
    )
    added_other = (
        added[added["kind"] != "usage"]
        .groupby(["subscription_id", "invoice_start"])["amount"]
        .sum()
    )
    return groups, removed, added_usage, added_other


def _attribute_groups(groups: pd.DataFrame) -> pd.DataFrame:
    """Split each mapped group's change into price, quantity, removal and new usage."""

    def col(name: str) -> np.ndarray:
        return groups[name].astype("int64").to_numpy()

    l_amount, n_amount = col("l_amount"), col("n_amount")
    l_usage, n_usage = col("l_usage_amount"), col("n_usage_amount")
    l_flat = l_amount - l_usage
    # A new item billed only by usage: legacy flat fees behind it are removed, and its
    # usage is new unless legacy billed usage for it too.
    metered = (col("n_usage") > 0) & (n_amount == n_usage)
    legacy_metered = col("l_usage") > 0
    # New price at the legacy quantity, for per-unit recurring lines.
    qty_part = np.zeros(len(groups), dtype=np.int64)
    has_unit = groups["n_unit"].notna().to_numpy() & ~metered
    if has_unit.any():
        units = groups.loc[has_unit, "n_unit"].astype(str).tolist()
        scale = 12
        scaled = decimal_to_scaled(units, scale)
        at_legacy_qty = mul_div_round(
            groups.loc[has_unit, "l_rec_qty"].astype("int64").to_numpy(),
            scaled,
            10**scale,
            "half_up",
        )
        qty_part[has_unit] = col("n_rec_amount")[has_unit] - at_legacy_qty
    out = groups[["subscription_id", "invoice_start"]].copy()
    out["removed_item"] = np.where(metered, -l_flat, 0)
    out["new_usage_charge"] = np.where(metered & ~legacy_metered, n_amount, 0)
    out["price_change"] = np.where(
        metered, np.where(legacy_metered, n_amount - l_usage, 0), n_amount - l_amount - qty_part
    )
    out["quantity_transform"] = qty_part
    return out.groupby(["subscription_id", "invoice_start"]).sum()


def _discount_causes(legacy: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    def by_id(lines: pd.DataFrame) -> pd.DataFrame:
        d = lines[lines["kind"] == "discount"]
        return d.assign(discount_id=d["line_id"].astype("string").str.rsplit("/", n=1).str[-1])[
            ["subscription_id", "invoice_start", "discount_id", "amount"]
        ]

    leg, nw = by_id(legacy), by_id(new)
    both = leg.merge(
        nw,
        on=["subscription_id", "invoice_start", "discount_id"],
        how="outer",
        suffixes=("_l", "_n"),
    )
    l_amt = both["amount_l"].fillna(0).astype("int64")
    n_amt = both["amount_n"].fillna(0).astype("int64")
    protection = both["discount_id"].str.startswith(PROTECTION_PREFIX).fillna(False)
    lost = both["amount_n"].isna() & ~protection
    out = both[["subscription_id", "invoice_start"]].copy()
    out["price_protection"] = np.where(protection, n_amt - l_amt, 0)
    out["discount_lost"] = np.where(lost, -l_amt, 0)
    out["discount_carried"] = np.where(~protection & ~lost, n_amt - l_amt, 0)
    return out.groupby(["subscription_id", "invoice_start"]).sum()


def attribute_invoices(sides: Sides, lineage: pd.DataFrame) -> pd.DataFrame:
    """One row per invoice of either model: legacy and new totals and the causes between."""
    inv_l0, lines_l0 = sides.legacy
    inv_l1, lines_l1 = sides.legacy_new_rules
    inv_n, lines_n = sides.new
    l0 = _with_invoice(inv_l0, lines_l0)
    l1 = _with_invoice(inv_l1, lines_l1)
    nw = _with_invoice(inv_n, lines_n)

    keys = ["subscription_id", "customer_id", "currency", "period_start", "period_end"]
    heads = pd.concat([inv_l0[keys], inv_n[keys]]).drop_duplicates(_INV).set_index(_INV)
    totals = pd.concat(
        [
            inv_l0.set_index(_INV)["total"].rename("legacy_total"),
            inv_l1.set_index(_INV)["total"].rename("legacy_new_rules_total"),
            inv_n.set_index(_INV)["total"].rename("new_total"),
        ],
        axis=1,
    )
    frame = heads.join(totals, how="left")
    for col in ("legacy_total", "legacy_new_rules_total", "new_total"):
        frame[col] = frame[col].fillna(0).astype("int64")

    def series(lines: pd.DataFrame, mask: pd.Series, name: str) -> pd.Series:
        return _sum_lines(lines, mask, name)

    engine = frame["legacy_new_rules_total"] - frame["legacy_total"]
    prorations = series(l1, l1["kind"] == "proration", "p1").reindex(frame.index).fillna(
        0
    ) - series(l0, l0["kind"] == "proration", "p0").reindex(frame.index).fillna(0)
    frame["proration_method"] = prorations.astype("int64")
    frame["rounding"] = (engine - frame["proration_method"]).astype("int64")

    groups, removed, added_usage, added_other = _charge_groups(l1, nw, lineage)
    parts = _attribute_groups(groups)
    parts.index = parts.index.set_names(_INV)
    frame = frame.join(parts, how="left")
    removed.index = removed.index.set_names(_INV)
    added_usage.index = added_usage.index.set_names(_INV)
    added_other.index = added_other.index.set_names(_INV)
    frame["removed_item"] = frame["removed_item"].fillna(0) - removed.reindex(frame.index).fillna(0)
    frame["new_usage_charge"] = frame["new_usage_charge"].fillna(0) + added_usage.reindex(
        frame.index
    ).fillna(0)
    frame["price_change"] = frame["price_change"].fillna(0) + added_other.reindex(
        frame.index
    ).fillna(0)
    frame["quantity_transform"] = frame["quantity_transform"].fillna(0)

    disc = _discount_causes(l1, nw)
    disc.index = disc.index.set_names(_INV)
    frame = frame.join(disc, how="left")
    tax = series(nw, nw["kind"] == "tax", "t").reindex(frame.index).fillna(0) - series(
        l1, l1["kind"] == "tax", "t"
    ).reindex(frame.index).fillna(0)
    frame["tax"] = tax
    for cause in CAUSE_ORDER[:-1]:
        frame[cause] = frame[cause].fillna(0).astype("int64")
    explained = frame[list(CAUSE_ORDER[:-1])].sum(axis=1)
    frame["delta"] = frame["new_total"] - frame["legacy_total"]
    frame["unexplained"] = (frame["delta"] - explained).astype("int64")
    return frame.reset_index()
