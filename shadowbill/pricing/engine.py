"""The pricing engine: every invoice a catalog's billing engine would issue for a snapshot.

``price(snapshot, catalog, start, end)`` implements docs/billing-model.md over whole
frames: billing periods, recurring, usage and proration lines, discounts, tax, totals.
Invoices and lines come out in the snapshot's own shape plus ``invoice_key``
(``<subscription_id>@<period_start>``, how legacy invoices are matched), and every
line says why it costs what it does (``explain``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from shadowbill.errors import PricingError
from shadowbill.listing import first_few
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.catalog import Catalog
from shadowbill.pricing.discounts import ChargeLines, discount_lines
from shadowbill.pricing.inputs import ERROR_COLUMNS, PricingInputs, prepare
from shadowbill.pricing.item_lines import (
    item_period_pairs,
    proration_lines,
    recurring_lines,
    usage_lines,
)
from shadowbill.pricing.joins import SumOverflow, checked_add, sum_by
from shadowbill.pricing.lines import PRORATION, LinePart, lines_frame, stack
from shadowbill.pricing.periods import Cadence, Periods, billing_periods, cadence, timestamp_us
from shadowbill.pricing.tax import InvoiceTax, tax_lines
from shadowbill.snapshot.instants import billed_through
from shadowbill.snapshot.tables import INVOICE_LINES, INVOICES, Snapshot

INVOICE_COLUMNS = [*INVOICES.column_names, "invoice_key"]
LINE_COLUMNS = [*INVOICE_LINES.column_names, "invoice_key", "item_id", "explain"]


@dataclass(frozen=True)
class PricedInvoices:
    """Recomputed invoices and lines, and the subscriptions that could not be priced."""

    invoices: pd.DataFrame  # INVOICES columns + invoice_key
    lines: pd.DataFrame  # INVOICE_LINES columns + invoice_key, item_id, explain
    errors: pd.DataFrame  # subscription_id, price_id, reason


def invoice_keys(subscription_ids: pa.Array, period_starts_us: np.ndarray) -> pa.Array:
    """``<subscription_id>@<period_start as %Y-%m-%dT%H:%M:%SZ>``: how invoices are matched."""
    return tx.join(subscription_ids, "@", tx.timestamps_iso(period_starts_us))


def price(
    snapshot: Snapshot,
    catalog: Catalog,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    *,
    text: bool = True,
) -> PricedInvoices:
    """Price every billing period with ``period_start >= start`` and ``period_end <= end``.

    ``start`` None prices from each subscription's first period; ``end`` None stops where
    billing stands in the snapshot (:func:`~shadowbill.snapshot.instants.billed_through`,
    else now). ``text`` False leaves the lines'
    ``description`` and ``explain`` empty: the comparisons never read them, only people do.
    """
    inputs = prepare(snapshot, catalog, text=text)
    if end is None:
        end = billed_through(snapshot) or pd.Timestamp.now(tz="UTC")
    end_us = timestamp_us(end)
    assert end_us is not None
    steps, bad_interval = cadence(
        inputs.subs.interval, inputs.subs.interval_count, inputs.subs.zone
    )
    errors = [inputs.errors, _interval_errors(inputs, bad_interval)]
    excluded = inputs.excluded | bad_interval
    canceled = np.where(excluded, inputs.subs.anchor, inputs.subs.canceled)
    periods = billing_periods(inputs.subs.anchor, steps, canceled, timestamp_us(start), end_us)
    n_inv = len(periods)
    try:
        lines, subtotal, discount, tax, issued = _all_lines(inputs, catalog, steps, periods)
    except SumOverflow as exc:
        raise _overflow_error(inputs, periods, exc.groups) from None
    total = subtotal - discount + tax.in_total  # checked in _all_lines

    # every line belongs to an issued invoice; number the issued ones 0..n-1
    keep = np.flatnonzero(issued)
    renumber = np.full(n_inv, -1, dtype=np.int64)
    renumber[keep] = np.arange(len(keep))
    kept = periods.take(keep)
    lines = lines.with_inv(renumber[lines.inv])
    sub_ids = pa.array(
        inputs.subs.frame["subscription_id"].to_numpy(dtype=object), pa.large_string()
    )
    keys = invoice_keys(sub_ids.take(pa.array(kept.sub)), kept.start)
    invoices = _invoices_frame(
        inputs, kept, keys, subtotal[keep], discount[keep], tax.reported[keep], total[keep]
    )
    price_ids = tuple(t.price_id for t in inputs.prices.terms)
    error_frame = pd.concat([e for e in errors if len(e)] or [errors[0]], ignore_index=True)
    consumed = [lines]
    del lines
    return PricedInvoices(
        invoices=invoices,
        lines=lines_frame(consumed, keys, price_ids, text=text),
        errors=error_frame.astype(ERROR_COLUMNS).reset_index(drop=True),
    )


def _all_lines(
    inputs: PricingInputs, catalog: Catalog, steps: Cadence, periods: Periods
) -> tuple[LinePart, np.ndarray, np.ndarray, InvoiceTax, np.ndarray]:
    """(every line in invoice order, subtotal, discount, tax, issued) per priced period.

    A function of its own so that the intermediate parts are freed when it returns.
    """
    engine = catalog.engine
    pairs = item_period_pairs(inputs, periods)
    charges = [
        recurring_lines(inputs, periods, pairs, engine),
        proration_lines(inputs, periods, pairs, engine, steps, catalog.billing_mode),
        usage_lines(inputs, periods, pairs, engine),
    ]
    del pairs
    n_inv = len(periods)
    inv = np.concatenate([p.inv for p in charges])
    amount = np.concatenate([p.amount for p in charges])
    issued = np.bincount(inv, minlength=n_inv) > 0
    subtotal = sum_by(inv, amount, n_inv)
    order = np.argsort(inv, kind="stable")  # charge parts come in kind order
    item = np.concatenate([p.item for p in charges])
    discountable = np.concatenate(
        [(p.kind != PRORATION) | engine.prorations_discountable for p in charges]
    )
    in_order = ChargeLines(inv[order], item[order], amount[order], discountable[order])
    del order, inv, amount, item, discountable
    discounts, net = discount_lines(inputs, steps, periods, in_order, issued, engine)
    discount = -sum_by(discounts.inv, discounts.amount, n_inv)
    base = checked_add(subtotal, -discount)
    taxes, tax = tax_lines(inputs, catalog, periods, in_order.inv, in_order.item, net)
    checked_add(base, tax.in_total)  # the total
    del in_order, net
    parts = [*charges, discounts, taxes]
    del charges, discounts, taxes
    return stack(parts, invoice_order=True), subtotal, discount, tax, issued


def _overflow_error(inputs: PricingInputs, periods: Periods, invoices: np.ndarray) -> PricingError:
    """The invoices whose subtotal, discount, tax or total leaves int64, named."""
    subs = inputs.subs.frame["subscription_id"].to_numpy(dtype=object)
    valid = invoices[(invoices >= 0) & (invoices < len(periods))]
    starts = tx.timestamps_iso(periods.start[valid]).to_pylist()
    named = [f"{subs[periods.sub[i]]}@{s}" for i, s in zip(valid, starts, strict=True)]
    return PricingError(
        f"the amounts of invoice(s) {first_few(named, 3)} add up to more than a 64-bit "
        "integer of minor units holds (9,223,372,036,854,775,807); check their quantities "
        "and prices"
    )


def _interval_errors(inputs: PricingInputs, bad: np.ndarray) -> pd.DataFrame:
    rows = np.flatnonzero(bad & ~inputs.excluded)
    frame = inputs.subs.frame.iloc[rows]
    return pd.DataFrame(
        {
            "subscription_id": frame["subscription_id"].to_numpy(),
            "price_id": pd.array([None] * len(rows), dtype="string"),
            "reason": pd.array(
                (
                    "interval "
                    + inputs.subs.interval.iloc[rows].astype("string").fillna("(empty)")
                    + " is not day, week, month or year"
                ).to_numpy(),
                dtype="string",
            ),
        }
    )


def _invoices_frame(
    inputs: PricingInputs,
    periods: Periods,
    keys: pa.Array,
    subtotal: np.ndarray,
    discount: np.ndarray,
    tax: np.ndarray,
    total: np.ndarray,
) -> pd.DataFrame:
    subs = inputs.subs.frame.iloc[periods.sub].reset_index(drop=True)
    key = pd.Series(pd.array(keys, dtype="string"))
    ts = "datetime64[us, UTC]"
    start = pd.Series(periods.start.astype("datetime64[us]")).dt.tz_localize("UTC")
    end = pd.Series(periods.end.astype("datetime64[us]")).dt.tz_localize("UTC")
    frame = pd.DataFrame(
        {
            "invoice_id": key,
            "subscription_id": subs["subscription_id"],
            "customer_id": subs["customer_id"],
            "period_start": start,
            "period_end": end,
            "currency": subs["currency"],
            "subtotal": pd.array(subtotal, dtype="Int64"),
            "discount": pd.array(discount, dtype="Int64"),
            "tax": pd.array(tax, dtype="Int64"),
            "total": pd.array(total, dtype="Int64"),
            "status": pd.Series(pd.array(tx.repeat("paid", len(key)), dtype="string")),
            "issued_at": end,
            "invoice_key": key,
        }
    )
    return frame.astype({"period_start": ts, "period_end": ts, "issued_at": ts})[INVOICE_COLUMNS]
