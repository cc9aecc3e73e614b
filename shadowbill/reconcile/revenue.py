"""Revenue as finance reads it: net of tax, history apart from projection, recognized by day.

Every invoice of a mapped subscription is split at its subscription's cut-over: periods
starting before it are **history** (what was issued, the legacy model recomputed, and
the new model as if it had applied), periods from it on are **projection** (the legacy
model continued against the new one). Amounts are net of tax (``total - tax``); the tax
is kept in its own columns and is never a cause of a revenue change.

Billings land in the month their period starts. Recognized revenue spreads each invoice
over its service period by day, in integer minor units, allocated by largest remainder so
that the months of an invoice add up exactly to its amount.

The run-rate at the cut-over is the revenue recognized in each subscription's first full
calendar month on the new platform (MRR; ARR is twelve times it), and the twelve months
from that month on (the forward run-rate), for both models. Every frame here is a sum
over invoices, so partitions combine by adding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.reconcile.findings import WATERFALL_CAUSES
from shadowbill.reconcile.line_match import invoice_key

DAY_US = 86_400 * 1_000_000

# Per month of service or billing, currency, segment and basis (history | projection).
REVENUE_COLUMNS: dict[str, str] = {
    "month": "string",  # "2026-01"
    "currency": "string",
    "segment": "string",
    "basis": "string",  # "history" (before the cut-over) | "projection" (from it on)
    "actual_billed": "Int64",  # issued legacy invoices, net of tax, by period start month
    "actual_tax": "Int64",
    "legacy_billed": "Int64",  # legacy model recomputed (history) or continued (projection)
    "legacy_tax": "Int64",
    "new_billed": "Int64",  # new model (as if applied, in history)
    "new_tax": "Int64",
    "actual_recognized": "Int64",  # the same amounts spread over the service period by day
    "legacy_recognized": "Int64",
    "new_recognized": "Int64",
}

# Per customer and currency: the run-rate at the cut-over, net of tax.
RUN_RATE_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "currency": "string",
    "legacy_mrr": "Int64",  # recognized in the first full month from the cut-over
    "new_mrr": "Int64",
    "legacy_next_12": "Int64",  # recognized over the twelve months from that month
    "new_next_12": "Int64",
}

# The causes of a revenue change net of tax (tax is its own reconciliation line).
REVENUE_CAUSES: tuple[str, ...] = tuple(c for c in WATERFALL_CAUSES if c != "tax")

# Per currency and step: legacy MRR, each cause's share of the MRR month, the rest of the
# day allocation, new MRR. The steps add up exactly.
BRIDGE_COLUMNS: dict[str, str] = {
    "currency": "string",
    "step": "string",  # "legacy_mrr", a cause, "allocation", "new_mrr"
    "amount": "Int64",
}


def _us(values: pd.Series) -> np.ndarray:
    return np.asarray(values.astype("datetime64[us, UTC]").astype("int64"), dtype=np.int64)


def month_index(us: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of instants in microseconds (UTC)."""
    days = us // DAY_US
    ym = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return np.asarray(ym, dtype=np.int64)


def _month_start_day(month: np.ndarray) -> np.ndarray:
    return month.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def month_text(month: np.ndarray) -> np.ndarray:
    """ "YYYY-MM" for months since 1970-01."""
    return np.asarray(month.astype("datetime64[M]").astype(str), dtype=object)


def first_full_month(cutover_us: np.ndarray) -> np.ndarray:
    """The first calendar month that starts at or after each cut-over (months since 1970-01)."""
    month = month_index(cutover_us)
    starts_us = _month_start_day(month) * DAY_US
    return np.where(cutover_us == starts_us, month, month + 1)


def recognize(
    amount: np.ndarray, start_us: np.ndarray, end_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spread each amount over its service days, month by month, by largest remainder.

    Returns ``(row, month, share)``: the input row, the month (since 1970-01) and the
    integer share, whose sum per row is exactly the row's amount. A period's days are the
    calendar days from its start day up to (not including) its end day; a period of no
    whole day is recognized in its start month. Ties of the remainder go to the earlier month.
    """
    amount = np.asarray(amount, dtype=np.int64)
    first_day = start_us // DAY_US
    last_day = np.maximum(end_us // DAY_US, first_day + 1)  # exclusive
    days = last_day - first_day
    m0 = month_index(first_day * DAY_US)
    m1 = month_index((last_day - 1) * DAY_US)
    span = (m1 - m0 + 1).astype(np.int64)
    row = np.repeat(np.arange(len(amount)), span)
    offset = np.arange(len(row)) - np.repeat(np.cumsum(span) - span, span)
    month = m0[row] + offset
    lo = np.maximum(_month_start_day(month), first_day[row])
    hi = np.minimum(_month_start_day(month + 1), last_day[row])
    overlap = hi - lo
    size = np.abs(amount)[row]
    whole, remainder = np.divmod(size * overlap, days[row])
    given = np.zeros(len(amount), dtype=np.int64)
    np.add.at(given, row, whole)
    left = np.abs(amount) - given
    order = np.lexsort((month, -remainder, row))
    rank = np.empty(len(row), dtype=np.int64)
    starts = np.cumsum(span) - span
    rank[order] = np.arange(len(row)) - np.repeat(starts, span)
    share = whole + (rank < left[row]).astype(np.int64)
    return row, month, share * np.sign(amount)[row]


def _net(invoices: pd.DataFrame) -> pd.DataFrame:
    """Invoice key -> net of tax and tax."""
    tax = invoices["tax"].astype("int64")
    return pd.DataFrame(
        {
            "net": invoices["total"].astype("int64").to_numpy() - tax.to_numpy(),
            "tax": tax.to_numpy(),
        },
        index=pd.Index(invoices["invoice_key"].astype("string").to_numpy()),
    )


def net_attribution(
    attributed: pd.DataFrame,
    legacy: pd.DataFrame,
    legacy_new_rules: pd.DataFrame,
    new: pd.DataFrame,
) -> pd.DataFrame:
    """Comparison B's invoices net of tax: legacy and new net and tax, and net causes.

    The causes add up to ``new_net - legacy_net``: tax is not among them, and the tax
    part of the engine's rounding difference (legacy items under new rules) leaves the
    rounding cause, so that ``tax_difference = new_tax - legacy_tax`` is the only line
    where tax moves.
    """
    keys = invoice_key(attributed["subscription_id"], attributed["period_start"])
    key = pd.Index(keys.astype("string").to_numpy())
    sides = {}
    for name, frame in (("legacy", legacy), ("l1", legacy_new_rules), ("new", new)):
        nets = _net(frame)
        nets = nets[~nets.index.duplicated()].reindex(key).fillna(0).astype("int64")
        sides[name] = nets
    out = attributed[
        ["subscription_id", "customer_id", "currency", "period_start", "period_end"]
    ].copy()
    out["legacy_net"] = sides["legacy"]["net"].to_numpy()
    out["legacy_tax"] = sides["legacy"]["tax"].to_numpy()
    out["new_net"] = sides["new"]["net"].to_numpy()
    out["new_tax"] = sides["new"]["tax"].to_numpy()
    for cause in REVENUE_CAUSES:
        out[cause] = attributed[cause].astype("int64").to_numpy()
    engine_tax = sides["l1"]["tax"].to_numpy() - sides["legacy"]["tax"].to_numpy()
    out["rounding"] = out["rounding"].to_numpy() - engine_tax
    return out


def _cutover(frame: pd.DataFrame, assignments: pd.DataFrame) -> np.ndarray:
    at = assignments.drop_duplicates("subscription_id").set_index("subscription_id")["cutover_at"]
    return _us(at.reindex(frame["subscription_id"].astype("string")).reset_index(drop=True))


def revenue_view(
    actual: pd.DataFrame, net: pd.DataFrame, assignments: pd.DataFrame, segments: pd.Series
) -> pd.DataFrame:
    """Billings and recognized revenue per month, currency, segment and basis, net of tax.

    ``actual`` are the issued invoices of the mapped subscriptions; ``net`` is
    :func:`net_attribution`'s frame; ``segments`` maps customer id to segment.
    """
    parts = []
    for side, frame, values, taxes in (
        ("actual", actual, None, None),
        ("legacy", net, "legacy_net", "legacy_tax"),
        ("new", net, "new_net", "new_tax"),
    ):
        if values is None:
            tax = frame["tax"].astype("int64").to_numpy()
            amount = frame["total"].astype("int64").to_numpy() - tax
        else:
            amount = frame[values].to_numpy(dtype=np.int64)
            tax = frame[taxes].to_numpy(dtype=np.int64)
        start, end = _us(frame["period_start"]), _us(frame["period_end"])
        cut = _cutover(frame, assignments)
        basis = np.where(start < cut, "history", "projection")
        currency = frame["currency"].astype("string").str.upper().to_numpy()
        segment = segments.reindex(frame["customer_id"].astype("string")).to_numpy()
        billed = pd.DataFrame(
            {
                "month": month_index(start),
                "currency": currency,
                "segment": segment,
                "basis": basis,
                f"{side}_billed": amount,
                f"{side}_tax": tax,
            }
        )
        row, month, share = recognize(amount, start, end)
        recognized = pd.DataFrame(
            {
                "month": month,
                "currency": currency[row],
                "segment": segment[row],
                "basis": basis[row],
                f"{side}_recognized": share,
            }
        )
        parts += [billed, recognized]
    keys = ["month", "currency", "segment", "basis"]
    whole = pd.concat(parts, ignore_index=True)
    whole["segment"] = whole["segment"].astype("string").fillna("")
    sums = whole.groupby(keys, sort=True, dropna=False).sum(min_count=0).reset_index()
    sums["month"] = month_text(sums["month"].to_numpy(dtype=np.int64))
    out = sums.reindex(columns=list(REVENUE_COLUMNS)).fillna(
        dict.fromkeys(list(REVENUE_COLUMNS)[4:], 0)
    )
    return out.astype(REVENUE_COLUMNS)


def _window(net: pd.DataFrame, assignments: pd.DataFrame) -> np.ndarray:
    return first_full_month(_cutover(net, assignments))


def run_rate_view(
    net: pd.DataFrame, assignments: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per customer: MRR at the cut-over and the next twelve months; per currency: the bridge."""
    start, end = _us(net["period_start"]), _us(net["period_end"])
    first = _window(net, assignments)
    columns = {"legacy": "legacy_net", "new": "new_net", **{c: c for c in REVENUE_CAUSES}}
    customer = net["customer_id"].astype("string").to_numpy()
    currency = net["currency"].astype("string").str.upper().to_numpy()
    per_customer: dict[str, pd.Series] = {}
    bridge: dict[str, pd.Series] = {}
    for name, column in columns.items():
        row, month, share = recognize(net[column].to_numpy(dtype=np.int64), start, end)
        in_mrr = month == first[row]
        in_next = (month >= first[row]) & (month < first[row] + 12)
        mrr = pd.Series(share * in_mrr).groupby(currency[row]).sum()
        bridge[name] = mrr
        if name in ("legacy", "new"):
            idx = pd.MultiIndex.from_arrays([customer[row], currency[row]])
            per_customer[f"{name}_mrr"] = (
                pd.Series(share * in_mrr, index=idx).groupby(level=[0, 1]).sum()
            )
            per_customer[f"{name}_next_12"] = (
                pd.Series(share * in_next, index=idx).groupby(level=[0, 1]).sum()
            )
    customers = pd.DataFrame(per_customer).fillna(0)
    customers.index.names = ["customer_id", "currency"]
    customers = customers.reset_index().reindex(columns=list(RUN_RATE_COLUMNS))
    steps = pd.DataFrame(bridge).fillna(0).astype("int64")
    steps["allocation"] = steps["new"] - steps["legacy"] - steps[list(REVENUE_CAUSES)].sum(axis=1)
    steps = steps.rename(columns={"legacy": "legacy_mrr", "new": "new_mrr"})
    order = ["legacy_mrr", *REVENUE_CAUSES, "allocation", "new_mrr"]
    long = (
        steps[order]
        .rename_axis("currency")
        .reset_index()
        .melt(id_vars="currency", var_name="step", value_name="amount")
    )
    return customers.astype(RUN_RATE_COLUMNS), long.astype(BRIDGE_COLUMNS)
