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

PROTECTION_PREFIX = "pp_"
_CHARGES = ("recurring", "usage", "proration", "one_off")
_KEY = ["sub", "start"]

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


def _us(series: pd.Series) -> np.ndarray:
    values = series.astype("datetime64[us, UTC]").to_numpy(dtype="datetime64[us]")
    return values.astype(np.int64)


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


def _line_table(invoices: pd.DataFrame, lines: pd.DataFrame, codes: _Codes) -> pd.DataFrame:
    """Lines as integer columns: subscription, invoice start, kind, amounts, item, instants."""
    pos = positions(lines["invoice_id"], pc.unique(_arrow(invoices["invoice_id"])))
    keep = pos >= 0
    lines, pos = lines[keep], pos[keep]
    inv_sub = codes.sub(invoices["subscription_id"])
    inv_start = _us(invoices["period_start"])
    kind = lines["kind"].astype("string").to_numpy(dtype=object)
    out = pd.DataFrame(
        {
            "sub": inv_sub[pos],
            "start": inv_start[pos],
            "kind": pd.Categorical(kind, categories=[*_CHARGES, "discount", "tax"]),
            "amount": lines["amount"].astype("int64").to_numpy(),
            "quantity": lines["quantity"].astype("Int64").fillna(0).astype("int64").to_numpy(),
            "item": codes.item(lines["item_id"]),
            "line_start": _us(lines["period_start"]),
        }
    )
    out["unit"] = lines["unit_amount_decimal"].astype("string").to_numpy()
    discount = (out["kind"] == "discount").to_numpy()
    disc_id = np.full(len(out), "", dtype=object)
    disc_id[discount] = (
        lines.loc[discount, "line_id"].astype("string").str.rsplit("/", n=1).str[-1].to_numpy()
    )
    out["discount_id"] = disc_id
    return out


def _instant(lines: pd.DataFrame) -> np.ndarray:
    """Which state of the item history a line bills: credits bill the state before."""
    at = lines["start"].to_numpy().copy()
    prorate = (lines["kind"] == "proration").to_numpy()
    at[prorate] = lines["line_start"].to_numpy()[prorate]
    credit = prorate & (lines["amount"].to_numpy() < 0)
    at[credit] -= 1
    return at


def _lookup(lines: pd.DataFrame, lineage: pd.DataFrame, item_col: str) -> pd.DataFrame:
    """Each line's lineage rows: same subscription and item, segment containing its instant."""
    left = pd.DataFrame(
        {
            "sub": lines["sub"].to_numpy(),
            "item": lines["item"].to_numpy(),
            "at": _instant(lines),
            "row": np.arange(len(lines)),
        }
    )
    right = lineage[["sub", item_col, "valid_from", "valid_to", "other"]].rename(
        columns={item_col: "item"}
    )
    joined = left.merge(right, on=["sub", "item"], how="inner")
    inside = (joined["valid_from"].to_numpy() <= joined["at"].to_numpy()) & (
        joined["at"].to_numpy() < joined["valid_to"].to_numpy()
    )
    return joined[inside]


def _groups(legacy: pd.DataFrame, new: pd.DataFrame, lineage: pd.DataFrame) -> pd.DataFrame:
    """Per invoice: price, quantity, removal and new-usage parts of the charge lines."""
    leg = legacy[legacy["kind"].isin(_CHARGES)].reset_index(drop=True)
    nw = new[new["kind"].isin(_CHARGES)].reset_index(drop=True)

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

    def agg(frame: pd.DataFrame) -> pd.DataFrame:
        usage = (frame["kind"] == "usage").to_numpy()
        rec = (frame["kind"] == "recurring").to_numpy()
        amount = frame["amount"].to_numpy()
        f = pd.DataFrame(
            {
                "sub": frame["sub"].to_numpy(),
                "start": frame["start"].to_numpy(),
                "group": frame["group"].to_numpy(),
                "amount": amount,
                "usage": usage.astype(np.int64),
                "usage_amount": np.where(usage, amount, 0),
                "rec_qty": np.where(rec, frame["quantity"].to_numpy(), 0),
                "rec_amount": np.where(rec, amount, 0),
            }
        )
        return f.groupby(["sub", "start", "group"], sort=False).agg(
            amount=("amount", "sum"),
            usage=("usage", "max"),
            usage_amount=("usage_amount", "sum"),
            rec_qty=("rec_qty", "sum"),
            rec_amount=("rec_amount", "sum"),
        )

    g = (
        agg(leg[group >= 0])
        .add_prefix("l_")
        .join(agg(nw[has_source]).add_prefix("n_"), how="outer")
        .fillna(0)
    )
    g = g.astype("int64")
    # the new side's unit price per group, to price the legacy quantity
    rec = nw[has_source & (nw["kind"] == "recurring").to_numpy() & nw["unit"].notna().to_numpy()]
    units = rec.groupby(["sub", "start", "group"], sort=False)["unit"].agg(["first", "nunique"])
    single_unit = units.loc[units["nunique"] == 1, "first"]
    g["n_unit"] = single_unit.reindex(g.index)

    l_amount, n_amount = g["l_amount"].to_numpy(), g["n_amount"].to_numpy()
    l_usage, n_usage = g["l_usage_amount"].to_numpy(), g["n_usage_amount"].to_numpy()
    metered = (g["n_usage"].to_numpy() > 0) & (n_amount == n_usage)
    legacy_metered = g["l_usage"].to_numpy() > 0
    qty_part = np.zeros(len(g), dtype=np.int64)
    has_unit = g["n_unit"].notna().to_numpy() & ~metered
    if has_unit.any():
        scale = 12
        scaled = decimal_to_scaled(g.loc[has_unit, "n_unit"].astype(str).tolist(), scale)
        at_legacy_qty = mul_div_round(
            g["l_rec_qty"].to_numpy()[has_unit], scaled, 10**scale, "half_up"
        )
        qty_part[has_unit] = g["n_rec_amount"].to_numpy()[has_unit] - at_legacy_qty
    parts = (
        pd.DataFrame(
            {
                "removed_item": np.where(metered, -(l_amount - l_usage), 0),
                "new_usage_charge": np.where(metered & ~legacy_metered, n_amount, 0),
                "price_change": np.where(
                    metered,
                    np.where(legacy_metered, n_amount - l_usage, 0),
                    n_amount - l_amount - qty_part,
                ),
                "quantity_transform": qty_part,
            },
            index=g.index,
        )
        .groupby(level=["sub", "start"])
        .sum()
    )

    def by_invoice(frame: pd.DataFrame, mask: np.ndarray | None = None) -> pd.Series:
        f: pd.DataFrame = frame if mask is None else frame[mask]
        return f.groupby(["sub", "start"], sort=False)["amount"].sum()

    extra = pd.concat(
        [
            -by_invoice(removed).rename("removed_item"),
            by_invoice(added, (added["kind"] == "usage").to_numpy()).rename("new_usage_charge"),
            by_invoice(added, (added["kind"] != "usage").to_numpy()).rename("price_change"),
        ],
        axis=1,
    ).fillna(0)
    return parts.add(extra, fill_value=0)


def _discounts(legacy: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    cols = ["sub", "start", "discount_id", "amount"]
    leg = legacy.loc[(legacy["kind"] == "discount").to_numpy(), cols]
    nw = new.loc[(new["kind"] == "discount").to_numpy(), cols]
    both = leg.merge(nw, on=["sub", "start", "discount_id"], how="outer", suffixes=("_l", "_n"))
    l_amt = both["amount_l"].fillna(0).to_numpy(dtype=np.int64)
    n_amt = both["amount_n"].fillna(0).to_numpy(dtype=np.int64)
    protection = both["discount_id"].astype(str).str.startswith(PROTECTION_PREFIX).to_numpy()
    lost = both["amount_n"].isna().to_numpy() & ~protection
    out = pd.DataFrame(
        {
            "sub": both["sub"].to_numpy(),
            "start": both["start"].to_numpy(),
            "price_protection": np.where(protection, n_amt - l_amt, 0),
            "discount_lost": np.where(lost, -l_amt, 0),
            "discount_carried": np.where(~protection & ~lost, n_amt - l_amt, 0),
        }
    )
    return out.groupby(["sub", "start"], sort=False).sum()


def _coded_lineage(lineage: pd.DataFrame, codes: _Codes) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sub": codes.sub(lineage["subscription_id"]),
            "legacy_item": codes.item(lineage["legacy_item_id"]),
            "new_item": codes.item(lineage["new_item_id"]),
            "valid_from": _us(lineage["valid_from"]),
            "valid_to": np.where(
                lineage["valid_to"].isna().to_numpy(),
                np.iinfo(np.int64).max,
                _us(lineage["valid_to"].fillna(pd.Timestamp(0, tz="UTC"))),
            ),
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
    l0 = _line_table(inv_l0, lines_l0, codes)
    l1 = _line_table(inv_l1, lines_l1, codes)
    nw = _line_table(inv_n, lines_n, codes)
    coded_lineage = _coded_lineage(lineage, codes)

    def heads(invoices: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "sub": codes.sub(invoices["subscription_id"]),
                "start": _us(invoices["period_start"]),
                "row": np.arange(len(invoices)),
                "total": invoices["total"].astype("int64").to_numpy(),
            }
        ).set_index(_KEY)

    h0, h1, hn = heads(inv_l0), heads(inv_l1), heads(inv_n)
    frame = pd.DataFrame(index=h0.index.union(hn.index))
    frame["legacy_total"] = h0["total"].reindex(frame.index).fillna(0).astype("int64")
    frame["legacy_new_rules_total"] = h1["total"].reindex(frame.index).fillna(0).astype("int64")
    frame["new_total"] = hn["total"].reindex(frame.index).fillna(0).astype("int64")

    def total(lines: pd.DataFrame, kind: str) -> pd.Series:
        picked = lines[(lines["kind"] == kind).to_numpy()]
        return (
            picked.groupby(["sub", "start"], sort=False)["amount"]
            .sum()
            .reindex(frame.index)
            .fillna(0)
        )

    engine = frame["legacy_new_rules_total"] - frame["legacy_total"]
    frame["proration_method"] = (total(l1, "proration") - total(l0, "proration")).astype("int64")
    frame["rounding"] = (engine - frame["proration_method"]).astype("int64")
    frame = frame.join(_groups(l1, nw, coded_lineage), how="left")
    frame = frame.join(_discounts(l1, nw), how="left")
    frame["tax"] = total(nw, "tax") - total(l1, "tax")
    for cause in CAUSE_ORDER[:-1]:
        frame[cause] = frame[cause].fillna(0).astype("int64")
    frame["delta"] = frame["new_total"] - frame["legacy_total"]
    frame["unexplained"] = (frame["delta"] - frame[list(CAUSE_ORDER[:-1])].sum(axis=1)).astype(
        "int64"
    )

    # back from codes to the invoices' own columns
    frame = frame.reset_index()
    in_new = hn["row"].reindex(pd.MultiIndex.from_frame(frame[_KEY])).to_numpy()
    in_legacy = h0["row"].reindex(pd.MultiIndex.from_frame(frame[_KEY])).to_numpy()
    source_new = ~np.isnan(in_new)
    cols = ["subscription_id", "customer_id", "currency", "period_start", "period_end"]
    head_new = inv_n[cols].iloc[np.nan_to_num(in_new).astype(np.int64)].reset_index(drop=True)
    head_legacy = (
        inv_l0[cols].iloc[np.nan_to_num(in_legacy).astype(np.int64)].reset_index(drop=True)
    )
    head = head_legacy.where(pd.Series(~source_new), head_new) if len(inv_l0) else head_new
    out = pd.concat([head, frame.drop(columns=_KEY)], axis=1)
    return out
