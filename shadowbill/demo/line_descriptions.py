"""The legacy engine's invoice line texts ("12 x Pro seats (Mar 2025)"), built per line kind."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.demo.legacy_engine import DISCOUNT, PRORATION, RECURRING, TAX, USAGE
from shadowbill.demo.legacy_text import day_labels, ints, join, major_units, month_labels, take
from shadowbill.demo.price_book import CURRENCIES, PriceBook

_COLUMNS = ("inv", "kind", "qty", "price", "lps", "lpe", "t", "credit", "ref")


def describe_lines(
    lines: pd.DataFrame, invoices: pd.DataFrame, discounts: pd.DataFrame, book: PriceBook
) -> pa.Array:
    """One description per line, in the lines' order."""
    cols = {c: lines[c].to_numpy() for c in _COLUMNS}
    order = np.argsort(cols["kind"], kind="stable")
    pieces = []
    for k in (RECURRING, PRORATION, USAGE, DISCOUNT, TAX):  # per line kind
        rows = order[cols["kind"][order] == k]
        if len(rows):
            part = {c: v[rows] for c, v in cols.items()}
            pieces.append(_describe(k, part, invoices, discounts, book))
    if not pieces:
        return pa.array([], pa.string())
    text = pa.concat_arrays(pieces)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return text.take(pa.array(inverse))


def _describe(
    k: int,
    part: dict[str, npt.NDArray[np.int64]],
    invoices: pd.DataFrame,
    discounts: pd.DataFrame,
    book: PriceBook,
) -> pa.Array:
    inv = part["inv"]
    if k in (RECURRING, PRORATION, USAGE):
        what = join(ints(part["qty"]), " x ", take(book.product_names, part["price"]))
    if k == RECURRING:
        annual = invoices["every"].to_numpy()[inv] == 12
        label = month_labels(part["lps"])
        both = join(label, " - ", month_labels(part["lpe"]))
        return join(what, " (", pc.if_else(pa.array(annual), both, label), ")")
    if k == PRORATION:
        lead = pc.if_else(pa.array(part["credit"] == 1), "Unused time on ", "Remaining time on ")
        return join(lead, what, " after ", day_labels(part["t"]))
    if k == USAGE:
        return join(what, " (", month_labels(part["lps"]), ")")
    if k == DISCOUNT:
        grant = discounts.iloc[part["ref"]]
        cur = invoices["cur"].to_numpy()[inv]
        amount = join(
            major_units(grant["amount_off"].to_numpy(), cur), " ", take(CURRENCIES, cur), " off"
        )
        pct = join(pa.array(grant["pct_text"].to_numpy(dtype=str), pa.string()), "% off")
        off = pc.if_else(pa.array(grant["pct_scaled"].to_numpy() >= 0), pct, amount)
        scope = pc.if_else(pa.array(grant["level"].to_numpy() == 1), " seats", "")
        coupon = pa.array(grant["coupon_id"].to_numpy(dtype=str), pa.string())
        return join(coupon, " (", off, scope, ")")
    names = [f"{r.display_name} {r.percentage}%" for r in book.tax_rates]  # per tax rate
    return take(names, part["ref"])
