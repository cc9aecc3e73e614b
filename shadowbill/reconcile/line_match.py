"""Match invoice lines of two sides by what they bill, not by their ids."""

from __future__ import annotations

import pandas as pd

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
    out = out.sort_values(
        ["subscription_id", "invoice_start", "kind", "price_id", "line_start", "sign", "line_id"],
        kind="stable",
    )
    out["nth"] = out.groupby(LINE_KEY[:-1], sort=False, dropna=False).cumcount()
    return out.reset_index(drop=True)


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


def invoice_key(subscription_id: pd.Series, period_start: pd.Series) -> pd.Series:
    """The stable key of a billing period's invoice: ``<subscription>@<period start, UTC>``."""
    stamp = period_start.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (subscription_id.astype("string") + "@" + stamp.astype("string")).astype("string")
