"""The demo company in its legacy engine's own schema: names, codes, formats of an in-house system.

Nothing here is canonical: accounts and plans instead of customers and subscriptions,
SKU codes instead of price ids, status words (ACTV, CNCL, PAID), Y/N flags, epoch
seconds and naive local-format timestamps, and money as decimal TEXT in major units
("39.00", "0.0075", "5900", "12.000"). ``examples/demo_company/extract_spec.yaml`` maps
it back onto the canonical tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.demo.item_history import ITEM_CODES
from shadowbill.demo.legacy_engine import KINDS, Billing
from shadowbill.demo.legacy_text import (
    ints,
    iso_naive,
    join,
    major_units,
    padded,
    take,
    unit_prices,
    with_nulls,
)
from shadowbill.demo.line_descriptions import describe_lines
from shadowbill.demo.population import COUNTRIES, PLANS, Population
from shadowbill.demo.price_book import CURRENCIES, PriceBook, major_text

# The legacy engine's product codes for the catalog's prices.
SKUS = {
    "starter_month": "STR-M",
    "starter_year": "STR-Y",
    "pro_month_v1": "PRO-M",
    "pro_month_v2": "PRO-M25",
    "pro_year": "PRO-Y",
    "premium_month": "PRM-M",
    "premium_year": "PRM-Y",
    "resolution_bot_month": "RBOT-M",
    "resolution_bot_year": "RBOT-Y",
    "reporting_month": "RPT-M",
    "reporting_year": "RPT-Y",
    "sms_month": "SMS",
    "whatsapp_month": "WA",
    "ai_resolution_month": "AIRES",
}
CHANNELS = {"sms_messages": "SMS", "whatsapp_messages": "WA", "ai_resolutions": "AIRES"}
PLAN_STATES = ("ACTV", "TRIAL", "PDUE", "CNCL")  # population.STATUSES order
ITEM_TYPES = {
    "recurring": "RECUR",
    "proration": "PRORATE",
    "usage": "USAGE",
    "discount": "DISC",
    "tax": "TAX",
}
ID_WIDTH = 7


def _numbered(prefix: str, index: np.ndarray) -> pa.Array:
    """``prefix`` + the 1-based number, zero-padded; one string per entity, then taken."""
    index = np.asarray(index, dtype=np.int64)
    table = join(prefix, padded(np.arange(1, int(index.max(initial=-1)) + 2), ID_WIDTH))
    return table.take(pa.array(index))


def account_ids(cust: np.ndarray) -> pa.Array:
    """``ACC-0000042``."""
    return _numbered("ACC-", cust)


def plan_refs(sub: np.ndarray) -> pa.Array:
    """``SUB-0000042``."""
    return _numbered("SUB-", sub)


def bill_numbers(sub: np.ndarray, k: np.ndarray) -> pa.Array:
    """``INV-0000042-017``: subscription and period number (1-based), stable across runs."""
    return join("INV-", padded(np.asarray(sub) + 1, ID_WIDTH), "-", padded(np.asarray(k) + 1, 3))


def _skus(price: np.ndarray, book: PriceBook) -> pa.Array:
    table = [SKUS[p] for p in book.price_ids]  # per catalog price
    price = np.asarray(price, dtype=np.int64)
    return pc.if_else(
        pa.array(price < 0), pa.scalar(None, pa.string()), take(table, np.maximum(price, 0))
    )


def accounts(pop: Population) -> pa.Table:
    """accounts: one row per customer."""
    c = pop.customers
    cust = c["cust"].to_numpy()
    slug = pc.utf8_lower(pc.replace_substring(pa.array(c["name"].to_numpy(dtype=str)), " ", ""))
    email = join("billing+", ints(cust + 1), "@", slug, ".example")
    no_email = (cust % 50) == 17  # a few accounts never gave one
    return pa.table(
        {
            "acct_no": account_ids(cust),
            "company_name": pa.array(c["name"].to_numpy(dtype=str), pa.string()),
            "contact_email": pc.if_else(pa.array(no_email), pa.scalar(None, pa.string()), email),
            "country_code": pc.utf8_lower(take(COUNTRIES, c["country"])),
            "billing_currency": pc.utf8_lower(take(CURRENCIES, c["cur"])),
            "channel": take(("WEB", "SALES"), c["sales"].to_numpy().astype(np.int64)),
            "opened_epoch": pa.array(c["created_at"].to_numpy()),
            "vat_exempt": take(("N", "Y"), c["tax_exempt"].to_numpy().astype(np.int64)),
        }
    )


def plans_active(pop: Population) -> pa.Table:
    """plans_active: one row per subscription, with the current billing cycle."""
    s = pop.subscriptions
    status = s["status"].to_numpy()
    return pa.table(
        {
            "plan_ref": plan_refs(s["sub"].to_numpy()),
            "acct_no": account_ids(s["cust"].to_numpy()),
            "seat_plan": pc.utf8_upper(take(PLANS, s["plan"])),
            "billing_cycle": take(("M", "Y"), (s["every"].to_numpy() == 12).astype(np.int64)),
            "plan_state": take(PLAN_STATES, status),
            "signup_epoch": pa.array(s["started_at"].to_numpy()),
            "trial_until": iso_naive(s["trial_end"].to_numpy()),
            "cancel_epoch": with_nulls(s["canceled_at"].to_numpy()),
            "cycle_start": pa.array(s["cps"].to_numpy()),
            "cycle_end": pa.array(s["cpe"].to_numpy()),
            "cur": take(CURRENCIES, s["cur"]),
            "billing_enabled": pa.array((status != 3).astype(np.int64)),
        }
    )


def plan_lines(items: pd.DataFrame, book: PriceBook) -> pa.Table:
    """plan_lines: the item history, one row per (item, valid_from)."""
    sub = items["sub"].to_numpy()
    return pa.table(
        {
            "hist_id": pa.array(np.arange(1, len(items) + 1, dtype=np.int64)),
            "line_ref": join(plan_refs(sub), "-", take(ITEM_CODES, items["code"])),
            "plan_ref": plan_refs(sub),
            "sku": _skus(items["price"].to_numpy(), book),
            "qty": pa.array(items["qty"].to_numpy()),
            "eff_from": pa.array(items["valid_from"].to_numpy()),
            "eff_to": with_nulls(items["valid_to"].to_numpy()),
        }
    )


def promo_grants(discounts: pd.DataFrame, pop: Population) -> pa.Table:
    """promo_grants: discounts, percent as text, amounts in major units, 0 = no end date."""
    d = discounts
    sub = d["sub"].to_numpy()
    cur = pop.subscriptions["cur"].to_numpy()[sub]
    line = d["level"].to_numpy() == 1
    pct = d["pct_scaled"].to_numpy() >= 0
    none = pa.scalar(None, pa.string())
    return pa.table(
        {
            "grant_id": join("PRM-", padded(sub + 1, ID_WIDTH), "-", take(("S", "L"), d["level"])),
            "plan_ref": plan_refs(sub),
            "line_ref": pc.if_else(
                pa.array(line),
                join(
                    plan_refs(sub), "-", take(ITEM_CODES, np.maximum(d["item_code"].to_numpy(), 0))
                ),
                none,
            ),
            "promo_code": pa.array(d["coupon_id"].to_numpy(dtype=str), pa.string()),
            "pct": pc.if_else(
                pa.array(pct), pa.array(d["pct_text"].to_numpy(dtype=str), pa.string()), none
            ),
            "amt": pc.if_else(pa.array(pct), none, major_units(d["amount_off"].to_numpy(), cur)),
            "cur": take(CURRENCIES, cur),
            "valid_from": pa.array(d["starts_at"].to_numpy()),
            "valid_until": pa.array(np.maximum(d["ends_at"].to_numpy(), 0)),
        }
    )


def meter_readings(usage: pd.DataFrame, book: PriceBook) -> pa.Table:
    """meter_readings: units per (plan, channel, billing period)."""
    channel = [CHANNELS.get(m or "", "") for m in book.meters]  # per catalog price
    return pa.table(
        {
            "reading_id": pa.array(np.arange(1, len(usage) + 1, dtype=np.int64)),
            "plan_ref": plan_refs(usage["sub"].to_numpy()),
            "channel": take(channel, usage["price"]),
            "period_from": pa.array(usage["ps"].to_numpy()),
            "period_to": pa.array(usage["pe"].to_numpy()),
            "units": pa.array(usage["qty"].to_numpy()),
        }
    )


def bills(billing: Billing, pop: Population) -> pa.Table:
    """bills: one row per issued invoice, totals in major units."""
    inv = billing.invoices
    sub = inv["sub"].to_numpy()
    cur = inv["cur"].to_numpy()
    # The last invoice of a past-due subscription is unpaid.
    last = np.r_[sub[1:] != sub[:-1], True]
    due = last & (pop.subscriptions["status"].to_numpy()[sub] == 2)
    return pa.table(
        {
            "bill_no": bill_numbers(sub, inv["k"].to_numpy()),
            "plan_ref": plan_refs(sub),
            "acct_no": account_ids(inv["cust"].to_numpy()),
            "period_from": iso_naive(inv["ps"].to_numpy()),
            "period_to": iso_naive(inv["pe"].to_numpy()),
            "cur": take(CURRENCIES, cur),
            "subtotal": major_units(inv["subtotal"].to_numpy(), cur),
            "discount_amt": major_units(inv["discount"].to_numpy(), cur),
            "tax_amt": major_units(inv["tax"].to_numpy(), cur),
            "total_amt": major_units(inv["total"].to_numpy(), cur),
            "bill_status": take(("PAID", "DUE"), due.astype(np.int64)),
            "issued_epoch": pa.array(inv["pe"].to_numpy()),
        }
    )


def bill_items(
    billing: Billing, bill_no: pa.Array, discounts: pd.DataFrame, book: PriceBook
) -> pa.Table:
    """bill_items: every invoice line in its invoice's order, amounts in major units."""
    lines = billing.lines
    inv = lines["inv"].to_numpy()
    cur = billing.invoices["cur"].to_numpy()[inv]
    own_no = bill_no.take(pa.array(inv))
    qty = lines["qty"].to_numpy()
    return pa.table(
        {
            "item_no": join(own_no, "-", _line_numbers(lines["no"].to_numpy())),
            "bill_no": own_no,
            "sku": _skus(lines["price"].to_numpy(), book),
            "item_type": take([ITEM_TYPES[k] for k in KINDS], lines["kind"]),
            "item_text": describe_lines(lines, billing.invoices, discounts, book),
            "qty": with_nulls(qty),
            "unit_price": _unit_prices(lines, cur, book),
            "amount": major_units(lines["amount"].to_numpy(), cur),
            "cur": take(CURRENCIES, cur),
            "line_from": pa.array(lines["lps"].to_numpy()),
            "line_to": pa.array(lines["lpe"].to_numpy()),
        }
    )


def _line_numbers(no: np.ndarray) -> pa.Array:
    """Line numbers within an invoice as two or more digits ("01", "12", "105")."""
    table = [f"{i:02d}" for i in range(int(no.max(initial=0)) + 1)]  # per line number
    return take(table, no)


def _unit_prices(lines: pd.DataFrame, cur: np.ndarray, book: PriceBook) -> pa.Array:
    """Catalog unit prices as text, except where a line was billed at another unit (stale)."""
    price = lines["price"].to_numpy()
    catalog = book.unit_scaled[np.maximum(price, 0), cur]
    unit = lines["unit"].to_numpy()
    off = (price >= 0) & (unit != catalog)
    text = unit_prices(price, cur, book)
    if not off.any():
        return text
    pairs, inverse = np.unique(np.stack([unit[off], cur[off]]), axis=1, return_inverse=True)
    table = [major_text(int(u), CURRENCIES[c]) for u, c in pairs.T]  # per distinct unit price
    where = np.zeros(len(lines), dtype=np.int64)
    where[off] = inverse.ravel()
    return pc.if_else(pa.array(off), take(table, where), text)


def vat_rates(book: PriceBook) -> pa.Table:
    """vat_rates: the catalog's tax rates under the legacy engine's codes."""
    rates = book.tax_rates
    return pa.table(
        {
            "rate_code": pa.array([f"{r.country}_STD" for r in rates], pa.string()),
            "country_code": pa.array([r.country for r in rates], pa.string()),
            "vat_pct": pa.array([r.percentage for r in rates], pa.string()),
            "incl_flag": pa.array(["Y" if r.inclusive else "N" for r in rates], pa.string()),
        }
    )


def legacy_tables(
    pop: Population,
    items: pd.DataFrame,
    discounts: pd.DataFrame,
    usage: pd.DataFrame,
    billing: Billing,
    book: PriceBook,
) -> Iterator[tuple[str, pa.Table]]:
    """Every legacy table, built one at a time in load order (so writing can overlap)."""
    yield "accounts", accounts(pop)
    yield "plans_active", plans_active(pop)
    yield "plan_lines", plan_lines(items, book)
    yield "promo_grants", promo_grants(discounts, pop)
    yield "meter_readings", meter_readings(usage, book)
    yield "vat_rates", vat_rates(book)
    bill = bills(billing, pop)
    yield "bills", bill
    yield "bill_items", bill_items(billing, bill["bill_no"].combine_chunks(), discounts, book)
