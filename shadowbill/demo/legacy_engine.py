"""The demo company's legacy billing engine: invoices per docs/billing-model.md, vectorized.

It bills with the legacy catalog's engine rules (proration by whole UTC days, ``half_up``,
discount and tax rounded once per invoice). Billing is two steps so that planted errors
can sit between them, as a buggy engine's would: :func:`charge_lines` makes the
recurring, proration and usage lines; :func:`finish_invoices` adds discount and tax lines
and the totals computed from whatever charge lines it is given.

Line frames are int64 columns: ``inv`` (invoice row), ``kind`` (:data:`KINDS` index),
``code`` (item code, -1 none), ``price`` (price row, -1 none), ``qty`` and ``unit``
(scaled, -1 none), ``amount`` (minor units), ``lps``/``lpe`` (line period), ``t`` (the
change time of a proration), ``credit`` (1 for a proration credit), ``ref`` (discount row
for discount lines), ``dup`` (1 for a duplicated line), ``err`` (planted error row, -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.demo.billing_calendar import utc_day
from shadowbill.demo.population import COUNTRIES
from shadowbill.demo.price_book import PCT_SCALE, UNIT_SCALE, PriceBook
from shadowbill.money import div_round, mul_div_round

I64 = npt.NDArray[np.int64]
KINDS = ("recurring", "proration", "usage", "discount", "tax")
RECURRING, PRORATION, USAGE, DISCOUNT, TAX = range(5)
LINE_COLUMNS = (
    "inv", "kind", "code", "price", "qty", "unit", "amount",
    "lps", "lpe", "t", "credit", "ref", "dup", "err",
)  # fmt: skip


@dataclass(frozen=True)
class Billing:
    """Issued invoices (one row per ``inv``) with totals, and their ordered, numbered lines."""

    invoices: pd.DataFrame
    lines: pd.DataFrame


def _lines(n: int, **cols: npt.ArrayLike) -> pd.DataFrame:
    """A line frame with every column, defaults -1 (0 for flags)."""
    out = {}
    for name in LINE_COLUMNS:
        default = 0 if name in ("credit", "dup") else -1
        value = cols.get(name, default)
        out[name] = np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)).copy()
    return pd.DataFrame(out)


def charge_lines(
    invoices: pd.DataFrame, items: pd.DataFrame, usage: pd.DataFrame, book: PriceBook
) -> pd.DataFrame:
    """Recurring, proration and usage lines of every invoice (one frame, unordered)."""
    cur = invoices["cur"].to_numpy()
    metered = book.is_metered(items["price"].to_numpy())
    head = invoices[["inv", "sub", "ps", "pe"]]
    j = head.merge(items[~metered], on="sub", how="inner", sort=False)
    inv = j["inv"].to_numpy()
    ps, pe = j["ps"].to_numpy(), j["pe"].to_numpy()
    vf, vt, qty = j["valid_from"].to_numpy(), j["valid_to"].to_numpy(), j["qty"].to_numpy()
    unit = book.unit_scaled[j["price"].to_numpy(), cur[inv]]
    scale = 10**UNIT_SCALE

    # recurring: every licensed row active at period_start, quantity > 0
    rec = (vf <= ps) & ((vt < 0) | (ps < vt)) & (qty > 0)
    # proration: a row starting (debit) or ending (credit) strictly inside the period
    deb = (ps < vf) & (vf < pe)
    cre = (vt >= 0) & (ps < vt) & (vt < pe)
    parts = [
        _lines(
            int(rec.sum()),
            inv=inv[rec],
            kind=RECURRING,
            code=j["code"].to_numpy()[rec],
            price=j["price"].to_numpy()[rec],
            qty=qty[rec],
            unit=unit[rec],
            amount=mul_div_round(qty[rec], unit[rec], scale, book.rounding),
            lps=ps[rec],
            lpe=pe[rec],
        )
    ]
    for mask, t, credit in ((deb, vf, 0), (cre, vt, 1)):
        tm = t[mask]
        left = utc_day(pe[mask]) - utc_day(tm)  # whole days from the date of t to period end
        whole = utc_day(pe[mask]) - utc_day(ps[mask])
        amount = mul_div_round(qty[mask] * unit[mask], left, whole * scale, book.rounding)
        parts.append(
            _lines(
                int(mask.sum()),
                inv=inv[mask],
                kind=PRORATION,
                code=j["code"].to_numpy()[mask],
                price=j["price"].to_numpy()[mask],
                qty=qty[mask],
                unit=unit[mask],
                amount=-amount if credit else amount,
                lps=tm,
                lpe=pe[mask],
                t=tm,
                credit=credit,
            )
        )

    # usage: metered rows overlapping the period, quantity from the period's usage row
    m = head.merge(items[metered], on="sub", how="inner", sort=False)
    m = m[(m["valid_from"] < m["pe"]) & ((m["valid_to"] < 0) | (m["valid_to"] > m["ps"]))]
    m = m.drop_duplicates(["inv", "price"])
    u = m.merge(
        usage[["sub", "ps", "price", "qty"]], on=["sub", "ps", "price"], suffixes=("_item", "")
    )
    u = u[u["qty"] > 0]
    uinv = u["inv"].to_numpy()
    uunit = book.unit_scaled[u["price"].to_numpy(), cur[uinv]]
    parts.append(
        _lines(
            len(u),
            inv=uinv,
            kind=USAGE,
            code=u["code"].to_numpy(),
            price=u["price"].to_numpy(),
            qty=u["qty"].to_numpy(),
            unit=uunit,
            amount=mul_div_round(u["qty"].to_numpy(), uunit, scale, book.rounding),
            lps=u["ps"].to_numpy(),
            lpe=u["pe"].to_numpy(),
        )
    )
    return pd.concat(parts, ignore_index=True)


def _sum_by(inv: I64, amount: I64, n: int) -> I64:
    """Exact integer sum of ``amount`` per invoice row."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, inv, amount)
    return out


def _discount(base: I64, pct_scaled: I64, amount_off: I64, book: PriceBook) -> I64:
    """The (positive) discount on a base: round(base x p / 100) or min(a, base), never below 0."""
    base = np.maximum(base, 0)
    pct = div_round(base * np.maximum(pct_scaled, 0), 100 * 10**PCT_SCALE, book.rounding)
    return np.where(pct_scaled >= 0, pct, np.minimum(amount_off, base))


def finish_invoices(
    invoices: pd.DataFrame,
    charges: pd.DataFrame,
    discounts: pd.DataFrame,
    customers: pd.DataFrame,
    book: PriceBook,
) -> Billing:
    """Add discount and tax lines and the totals; order and number every invoice's lines."""
    n = len(invoices)
    inv = charges["inv"].to_numpy()
    amount = charges["amount"].to_numpy()
    subtotal = _sum_by(inv, amount, n)

    grants = discounts.assign(ref=np.arange(len(discounts), dtype=np.int64))
    active = invoices[["inv", "sub", "ps", "pe"]].merge(grants, on="sub", how="inner", sort=False)
    active = active[
        (active["starts_at"] <= active["ps"])
        & ((active["ends_at"] < 0) | (active["ps"] < active["ends_at"]))
    ]
    discount = np.zeros(n, dtype=np.int64)
    code = charges["code"].to_numpy()
    by_item = np.zeros((max(int(code.max(initial=0)) + 1, 1), n), dtype=np.int64)
    np.add.at(by_item, (code, inv), amount)
    parts = [charges]
    for level in (1, 0):  # line-level first, then the whole subscription on what is left
        d = active[active["level"] == level]
        dinv = d["inv"].to_numpy()
        if level == 1:  # the lines (recurring and proration) of the discounted item
            base = by_item[d["item_code"].to_numpy(), dinv]
        else:
            base = (subtotal - discount)[dinv]
        off = _discount(base, d["pct_scaled"].to_numpy(), d["amount_off"].to_numpy(), book)
        discount += _sum_by(dinv, off, n)
        parts.append(
            _lines(
                len(d),
                inv=dinv,
                kind=DISCOUNT,
                amount=-off,
                lps=d["ps"].to_numpy(),
                lpe=d["pe"].to_numpy(),
                ref=d["ref"].to_numpy(),
                t=np.full(len(d), 1 - level),
            )
        )

    rate_of_country = np.full(len(COUNTRIES), -1, dtype=np.int64)
    for i, tax_rate in enumerate(book.tax_rates):  # per catalog tax rate
        if tax_rate.country in COUNTRIES and not tax_rate.inclusive:
            rate_of_country[COUNTRIES.index(tax_rate.country)] = i
    scaled = np.array([r.scaled for r in book.tax_rates] or [0], dtype=np.int64)
    cust = invoices["cust"].to_numpy()
    rate = rate_of_country[customers["country"].to_numpy()[cust]]
    rate = np.where(customers["tax_exempt"].to_numpy()[cust], -1, rate)
    taxed = rate >= 0
    tax = np.zeros(n, dtype=np.int64)
    tax[taxed] = div_round(
        (subtotal - discount)[taxed] * scaled[rate[taxed]], 100 * 10**PCT_SCALE, book.rounding
    )
    parts.append(
        _lines(
            int(taxed.sum()),
            inv=invoices["inv"].to_numpy()[taxed],
            kind=TAX,
            amount=tax[taxed],
            lps=invoices["ps"].to_numpy()[taxed],
            lpe=invoices["pe"].to_numpy()[taxed],
            ref=rate[taxed],
        )
    )
    lines = pd.concat(parts, ignore_index=True)
    order = np.lexsort(
        (
            lines["dup"].to_numpy(),
            lines["code"].to_numpy(),
            lines["credit"].to_numpy() ^ 1,
            lines["t"].to_numpy(),
            lines["kind"].to_numpy(),
            lines["inv"].to_numpy(),
        )
    )
    lines = lines.iloc[order].reset_index(drop=True)
    linv = lines["inv"].to_numpy()
    starts = np.flatnonzero(np.r_[True, linv[1:] != linv[:-1]])
    counts = np.diff(np.r_[starts, len(linv)])
    lines["no"] = np.arange(len(linv)) - np.repeat(starts, counts) + 1
    totals = invoices.assign(
        subtotal=subtotal, discount=discount, tax=tax, total=subtotal - discount + tax
    )
    return Billing(totals, lines)
