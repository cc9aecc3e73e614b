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

The work runs on integer codes (subscription, item, instant in microseconds) so that
millions of lines join and group quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.money import decimal_to_scaled, mul_div_round
from shadowbill.pricing.periods import NEVER, OPEN, to_us
from shadowbill.pricing.protection import PROTECTION_PREFIX
from shadowbill.reconcile.findings import WATERFALL_CAUSES

_CHARGES = ("recurring", "usage", "proration", "one_off")
_KEY = ["sub", "start"]


@dataclass(frozen=True)
class Sides:
    """The three pricings comparison B needs, as (invoices, lines) frames."""

    legacy: tuple[pd.DataFrame, pd.DataFrame]  # legacy items, legacy catalog and engine
    legacy_new_rules: tuple[pd.DataFrame, pd.DataFrame]  # legacy items, new engine rules
    new: tuple[pd.DataFrame, pd.DataFrame]  # the plan, the target catalog


def _arrow(values: pd.Series | pd.Index) -> pa.Array | pa.ChunkedArray:
    return pa.array(values.astype("string"), type=pa.string())


def positions(values: pd.Series | pd.Index, universe: pa.Array) -> np.ndarray:
    """Position of each value in ``universe`` (-1 when absent), by Arrow's hash lookup."""
    found = pc.index_in(_arrow(values), value_set=universe)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True)
class _Codes:
    subs: pa.Array
    items: pa.Array

    def sub(self, values: pd.Series) -> np.ndarray:
        return positions(values, self.subs)

    def item(self, values: pd.Series) -> np.ndarray:
        return positions(values, self.items)


_KINDS = pa.array([*_CHARGES, "discount", "tax"])
KIND = {name: code for code, name in enumerate(_KINDS.to_pylist())}


def _line_table(
    lines: pd.DataFrame, keys: pa.Array, sub_of: np.ndarray, start_of: np.ndarray, codes: _Codes
) -> pd.DataFrame:
    """Lines as integer columns: invoice code, subscription, start, kind, amounts, item, instants."""
    inv = positions(lines["invoice_key"], keys)
    keep = inv >= 0
    lines, inv = lines[keep], inv[keep]
    out = pd.DataFrame(
        {
            "inv": inv,
            "sub": sub_of[inv],
            "start": start_of[inv],
            "kind": positions(lines["kind"], _KINDS),
            "amount": lines["amount"].astype("int64").to_numpy(),
            "quantity": lines["quantity"].astype("Int64").fillna(0).astype("int64").to_numpy(),
            "item": codes.item(lines["item_id"]),
            "line_start": to_us(lines["period_start"], NEVER),
            "line_end": to_us(lines["period_end"], OPEN),
        }
    )
    out["unit"] = lines["unit_amount_decimal"].astype("string").array
    discount = (out["kind"] == KIND["discount"]).to_numpy()
    disc_id = np.full(len(out), "", dtype=object)
    disc_id[discount] = (
        lines.loc[discount, "line_id"].astype("string").str.rsplit("/", n=1).str[-1].to_numpy()
    )
    out["discount_id"] = disc_id
    return out


def _sum(codes: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per code."""
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, codes, values)
    return out


def _instant(lines: pd.DataFrame) -> np.ndarray:
    """Which state of the item history a line bills: credits bill the state before."""
    at = lines["start"].to_numpy().copy()
    prorate = (lines["kind"] == KIND["proration"]).to_numpy()
    at[prorate] = lines["line_start"].to_numpy()[prorate]
    credit = prorate & (lines["amount"].to_numpy() < 0)
    at[credit] -= 1
    return at


def _lookup(lines: pd.DataFrame, lineage: pd.DataFrame, item_col: str) -> pd.DataFrame:
    """Each line's lineage rows: same subscription and item, segment containing its instant.

    A usage line bills the whole period at the price of the item row in force last in it
    (docs/billing-model.md), and that row may start mid-period (an upgrade onto a plan with
    usage): it takes the last segment that overlaps its period, not the one at its start.
    """
    usage = (lines["kind"] == KIND["usage"]).to_numpy()
    left = pd.DataFrame(
        {
            "sub": lines["sub"].to_numpy(),
            "item": lines["item"].to_numpy(),
            "at": _instant(lines),
            "end": np.where(usage, lines["line_end"].to_numpy(), 0),
            "usage": usage,
            "row": np.arange(len(lines)),
        }
    )
    right = lineage[["sub", item_col, "valid_from", "valid_to", "other"]].rename(
        columns={item_col: "item"}
    )
    joined = left.merge(right, on=["sub", "item"], how="inner")
    at, valid_from, valid_to = (
        joined["at"].to_numpy(),
        joined["valid_from"].to_numpy(),
        joined["valid_to"].to_numpy(),
    )
    is_usage = joined["usage"].to_numpy(dtype=bool)
    inside = (valid_from <= at) & (at < valid_to)
    overlaps = (valid_from < joined["end"].to_numpy()) & (at < valid_to)
    joined = joined[np.where(is_usage, overlaps, inside)]
    if not is_usage.any():
        return joined
    # a usage line keeps only its last overlapping segment (every row of it, as a point would)
    last = joined.groupby("row", sort=False)["valid_from"].transform("max")
    usage_rows = joined["usage"].to_numpy(dtype=bool)
    return joined[~usage_rows | (joined["valid_from"] == last).to_numpy()]


def _groups(
    legacy: pd.DataFrame, new: pd.DataFrame, lineage: pd.DataFrame, size: int
) -> dict[str, np.ndarray]:
    """Per invoice code: price, quantity, removal and new-usage parts of the charge lines."""
    charge = [KIND[k] for k in _CHARGES]
    leg = legacy[legacy["kind"].isin(charge)].reset_index(drop=True)
    nw = new[new["kind"].isin(charge)].reset_index(drop=True)

    # legacy line -> its primary successor (the first new item its row maps to)
    hits = _lookup(leg, lineage.rename(columns={"new_item": "other"}), "legacy_item")
    mapped = hits[hits["other"] >= 0].sort_values(["row", "other"]).drop_duplicates("row")
    group = np.full(len(leg), -1, dtype=np.int64)
    group[mapped["row"].to_numpy()] = mapped["other"].to_numpy()
    traced = np.zeros(len(leg), dtype=bool)
    traced[hits["row"].to_numpy()] = True
    leg["group"] = group
    removed = leg[(group < 0) & traced]

    # new line -> mapped (has a legacy source in its segment) or added
    nhits = _lookup(nw, lineage.rename(columns={"legacy_item": "other"}), "new_item")
    has_source = np.zeros(len(nw), dtype=bool)
    has_source[nhits.loc[nhits["other"] >= 0, "row"].to_numpy()] = True
    ntraced = np.zeros(len(nw), dtype=bool)
    ntraced[nhits["row"].to_numpy()] = True
    nw["group"] = nw["item"]
    added = nw[~has_source & ntraced]

    # one int64 key per (invoice, new item)
    width = int(max(leg["group"].max() if len(leg) else 0, nw["group"].max() if len(nw) else 0)) + 2

    def agg(frame: pd.DataFrame) -> pd.DataFrame:
        kind = frame["kind"].to_numpy()
        usage = kind == KIND["usage"]
        rec = kind == KIND["recurring"]
        amount = frame["amount"].to_numpy()
        f = pd.DataFrame(
            {
                "key": frame["inv"].to_numpy() * width + frame["group"].to_numpy() + 1,
                "amount": amount,
                "usage": usage.astype(np.int64),
                "usage_amount": np.where(usage, amount, 0),
                "rec_qty": np.where(rec, frame["quantity"].to_numpy(), 0),
                "rec_amount": np.where(rec, amount, 0),
            }
        )
        return f.groupby("key", sort=False).agg(
            amount=("amount", "sum"),
            usage=("usage", "max"),
            usage_amount=("usage_amount", "sum"),
            rec_qty=("rec_qty", "sum"),
            rec_amount=("rec_amount", "sum"),
        )

    src = nw[has_source]
    g = agg(leg[group >= 0]).add_prefix("l_").join(agg(src).add_prefix("n_"), how="outer").fillna(0)
    g = g.astype("int64")
    # the new side's unit price per group, to price the legacy quantity
    rec = src[(src["kind"] == KIND["recurring"]).to_numpy() & src["unit"].notna().to_numpy()]
    rec_key = rec["inv"].to_numpy() * width + rec["group"].to_numpy() + 1
    units = rec.assign(key=rec_key).groupby("key", sort=False)["unit"].agg(["first", "nunique"])
    single_unit = units.loc[units["nunique"] == 1, "first"]
    n_unit = single_unit.reindex(g.index)

    l_amount, n_amount = g["l_amount"].to_numpy(), g["n_amount"].to_numpy()
    l_usage, n_usage = g["l_usage_amount"].to_numpy(), g["n_usage_amount"].to_numpy()
    metered = (g["n_usage"].to_numpy() > 0) & (n_amount == n_usage)
    legacy_metered = g["l_usage"].to_numpy() > 0
    qty_part = np.zeros(len(g), dtype=np.int64)
    has_unit = n_unit.notna().to_numpy() & ~metered
    if has_unit.any():
        scale = 12
        scaled = decimal_to_scaled(n_unit[has_unit].astype(str).tolist(), scale)
        at_legacy_qty = mul_div_round(
            g["l_rec_qty"].to_numpy()[has_unit], scaled, 10**scale, "half_up"
        )
        qty_part[has_unit] = g["n_rec_amount"].to_numpy()[has_unit] - at_legacy_qty
    inv = g.index.to_numpy() // width
    out = {
        "removed_item": _sum(inv, np.where(metered, -(l_amount - l_usage), 0), size),
        "new_usage_charge": _sum(inv, np.where(metered & ~legacy_metered, n_amount, 0), size),
        "price_change": _sum(
            inv,
            np.where(
                metered,
                np.where(legacy_metered, n_amount - l_usage, 0),
                n_amount - l_amount - qty_part,
            ),
            size,
        ),
        "quantity_transform": _sum(inv, qty_part, size),
    }
    out["removed_item"] -= _sum(removed["inv"].to_numpy(), removed["amount"].to_numpy(), size)
    usage = (added["kind"] == KIND["usage"]).to_numpy()
    out["new_usage_charge"] += _sum(
        added["inv"].to_numpy()[usage], added["amount"].to_numpy()[usage], size
    )
    out["price_change"] += _sum(
        added["inv"].to_numpy()[~usage], added["amount"].to_numpy()[~usage], size
    )
    return out


def _discounts(legacy: pd.DataFrame, new: pd.DataFrame, size: int) -> dict[str, np.ndarray]:
    cols = ["inv", "discount_id", "amount"]
    leg = legacy.loc[(legacy["kind"] == KIND["discount"]).to_numpy(), cols]
    nw = new.loc[(new["kind"] == KIND["discount"]).to_numpy(), cols]
    both = leg.merge(nw, on=["inv", "discount_id"], how="outer", suffixes=("_l", "_n"))
    l_amt = both["amount_l"].fillna(0).to_numpy(dtype=np.int64)
    n_amt = both["amount_n"].fillna(0).to_numpy(dtype=np.int64)
    protection = both["discount_id"].astype(str).str.startswith(PROTECTION_PREFIX).to_numpy()
    lost = both["amount_n"].isna().to_numpy() & ~protection
    inv = both["inv"].to_numpy()
    return {
        "price_protection": _sum(inv, np.where(protection, n_amt - l_amt, 0), size),
        "discount_lost": _sum(inv, np.where(lost, -l_amt, 0), size),
        "discount_carried": _sum(inv, np.where(~protection & ~lost, n_amt - l_amt, 0), size),
    }


def _coded_lineage(lineage: pd.DataFrame, codes: _Codes) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sub": codes.sub(lineage["subscription_id"]),
            "legacy_item": codes.item(lineage["legacy_item_id"]),
            "new_item": codes.item(lineage["new_item_id"]),
            "valid_from": to_us(lineage["valid_from"], NEVER),
            "valid_to": to_us(lineage["valid_to"], OPEN),
        }
    )


def attribute_invoices(sides: Sides, lineage: pd.DataFrame) -> pd.DataFrame:
    """One row per invoice of either model: legacy and new totals and the causes between."""
    inv_l0, lines_l0 = sides.legacy
    inv_l1, lines_l1 = sides.legacy_new_rules
    inv_n, lines_n = sides.new
    subs = pc.unique(_arrow(pd.concat([inv_l0["subscription_id"], inv_n["subscription_id"]])))
    items = pc.unique(
        _arrow(
            pd.concat(
                [
                    lineage["legacy_item_id"],
                    lineage["new_item_id"],
                    lines_l0["item_id"],
                    lines_n["item_id"],
                ]
            )
        ).drop_null()
    )
    codes = _Codes(subs, items)
    # every invoice of either model gets a code: its position in ``keys``
    both = pd.concat(
        [
            inv_n[["invoice_key", "subscription_id", "period_start"]],
            inv_l0[["invoice_key", "subscription_id", "period_start"]],
        ],
        ignore_index=True,
    )
    first = ~both["invoice_key"].duplicated().to_numpy()
    both = both[first].reset_index(drop=True)
    keys = _arrow(both["invoice_key"])
    size = len(both)
    sub_of = codes.sub(both["subscription_id"])
    start_of = to_us(both["period_start"], NEVER)
    l0 = _line_table(lines_l0, keys, sub_of, start_of, codes)
    l1 = _line_table(lines_l1, keys, sub_of, start_of, codes)
    nw = _line_table(lines_n, keys, sub_of, start_of, codes)

    def totals(invoices: pd.DataFrame) -> np.ndarray:
        return _sum(
            positions(invoices["invoice_key"], keys),
            invoices["total"].astype("int64").to_numpy(),
            size,
        )

    def kind_sum(lines: pd.DataFrame, kind: str) -> np.ndarray:
        picked = lines[(lines["kind"] == KIND[kind]).to_numpy()]
        return _sum(picked["inv"].to_numpy(), picked["amount"].to_numpy(), size)

    legacy_total, legacy_new_rules_total, new_total = totals(inv_l0), totals(inv_l1), totals(inv_n)
    causes: dict[str, np.ndarray] = {}
    causes["proration_method"] = kind_sum(l1, "proration") - kind_sum(l0, "proration")
    causes["rounding"] = legacy_new_rules_total - legacy_total - causes["proration_method"]
    causes.update(_groups(l1, nw, _coded_lineage(lineage, codes), size))
    causes.update(_discounts(l1, nw, size))
    causes["tax"] = kind_sum(nw, "tax") - kind_sum(l1, "tax")
    delta = new_total - legacy_total
    explained = np.sum([causes[c] for c in WATERFALL_CAUSES[:-1]], axis=0)
    causes["unexplained"] = delta - explained

    # the invoice's own columns, from the new model where it has the invoice
    cols = ["subscription_id", "customer_id", "currency", "period_start", "period_end"]
    head = pd.concat([inv_n[cols], inv_l0[cols]], ignore_index=True)[first].reset_index(drop=True)
    out = head.assign(
        legacy_total=legacy_total,
        legacy_new_rules_total=legacy_new_rules_total,
        new_total=new_total,
        **{c: causes[c] for c in WATERFALL_CAUSES[:-1]},
        delta=delta,
        unexplained=causes["unexplained"],
    )
    return out.sort_values(["subscription_id", "period_start"], kind="stable").reset_index(
        drop=True
    )
