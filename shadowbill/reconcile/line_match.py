"""Match invoice lines of two sides by what they bill, not by their ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.pricing.explain_text import timestamps_iso

CHARGE_KINDS = ("recurring", "usage", "proration", "one_off")

# A line is "the same line" on both sides when it bills the same price, of the same kind,
# for the same stretch of the same invoice period, with the same sign (proration credit
# or debit); the n-th such line on one side matches the n-th on the other.
LINE_KEY = ["subscription_id", "invoice_start", "kind", "price_id", "line_start", "sign", "nth"]


def keyed_lines(invoices: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Charge lines with their invoice's subscription and period start, keyed for matching."""
    head = invoices[["invoice_id", "subscription_id", "customer_id", "currency", "period_start"]]
    head = head.rename(columns={"period_start": "invoice_start"})
    charges = lines[lines["kind"].isin(CHARGE_KINDS)]
    out = charges.merge(head, on="invoice_id", how="inner")
    out["line_start"] = out["period_start"]
    out["sign"] = (out["amount"] < 0).map({True: "-", False: "+"}).astype("string")
    out["price_id"] = out["price_id"].astype("string").fillna("")
    # Sorted and counted on integer ranks of each column (missing last, as sort_values
    # puts them): the order and the groups of the strings, at a fraction of the cost.
    ranks = {c: _rank(out[c]) for c in LINE_KEY[:-1]}
    order = np.lexsort([ranks[c] for c in reversed(LINE_KEY[:-1])])  # stable
    keys = np.column_stack([ranks[c][order] for c in LINE_KEY[:-1]])
    new_group = np.ones(len(out), dtype=bool)
    if len(out) > 1:
        new_group[1:] = (keys[1:] != keys[:-1]).any(axis=1)
    # line_id only breaks ties: ranked among the lines of groups of two or more
    tied = ~new_group
    tied[:-1] |= ~new_group[1:]
    if tied.any():
        group = np.cumsum(new_group)
        by_id = np.zeros(len(out), dtype=np.int64)
        by_id[tied] = _rank(out["line_id"].iloc[order[tied]])
        order = order[np.lexsort((by_id, group))]
    out = out.iloc[order].reset_index(drop=True)
    starts = np.maximum.accumulate(np.where(new_group, np.arange(len(out)), 0))
    out["nth"] = np.arange(len(out), dtype=np.int64) - starts
    return out


_ORDER = ["subscription_id", "invoice_start", "kind", "price_id", "line_start", "sign", "line_id"]


def _rank(column: pd.Series) -> np.ndarray:
    """Integer ranks with the column's sort order; equal values share a rank, missing last."""
    codes, uniques = pd.factorize(column, sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    codes[codes < 0] = len(uniques)
    return codes


def match_lines(expected: pd.DataFrame, actual: pd.DataFrame) -> pd.DataFrame:
    """Outer-join keyed lines; ``_merge`` says which side each line is on."""
    cols = [
        *LINE_KEY,
        "customer_id",
        "currency",
        "invoice_id",
        "quantity",
        "unit_amount_decimal",
        "amount",
        "period_end",
        "description",
    ]

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[[c for c in cols if c in frame.columns]]

    return pick(expected).merge(
        pick(actual), on=LINE_KEY, how="outer", suffixes=("_exp", "_act"), indicator=True
    )


def iso_seconds(stamps: pd.Series) -> pd.Series:
    """Instants as UTC text to the second, "2025-03-12T00:00:00Z"; missing stays missing.

    The same text as ``strftime("%Y-%m-%dT%H:%M:%SZ")``, built from integers: keys of
    millions of lines are formatted in a fraction of strftime's time.
    """
    values = pd.DatetimeIndex(stamps)
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    missing = np.asarray(values.isna())
    micros = values.as_unit("us").asi8.copy()
    micros[missing] = 0
    text = timestamps_iso(micros)
    if missing.any():
        text = pc.if_else(pa.array(~missing), text, pa.scalar(None, pa.large_string()))
    return pd.Series(pd.array(text, dtype="string"), index=stamps.index)


def invoice_key(subscription_id: pd.Series, period_start: pd.Series) -> pd.Series:
    """The stable key of a billing period's invoice: ``<subscription>@<period start, UTC>``."""
    stamp = iso_seconds(period_start)
    return (subscription_id.astype("string") + "@" + stamp).astype("string")
