"""A slow, obviously-correct pricing reference: docs/billing-model.md, one invoice at a time.

Plain Python ``datetime`` and ``Decimal``; no numpy, no shared code with the engine
beyond the catalog model. The vectorized engine must produce exactly what this produces.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from shadowbill.errors import PricingError
from shadowbill.money import round_decimal
from shadowbill.pricing.catalog import Catalog, PriceTerms, TaxRate
from shadowbill.snapshot.tables import Snapshot

KIND_ORDER = {"recurring": 0, "proration": 1, "usage": 2, "discount": 4, "tax": 5}


@dataclass
class RefLine:
    """One line of a reference invoice."""

    kind: str
    amount: int
    price_id: str | None = None
    item_id: str | None = None
    quantity: int | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    ref: str = ""  # discount_id or tax rate id
    product: str | None = None
    net: int = 0  # a charge line's amount after its discounts
    debited_at: dt.datetime | None = None  # a proration credit: when its row was charged


@dataclass
class RefInvoice:
    """One reference invoice."""

    key: str
    subscription_id: str
    period_start: dt.datetime
    period_end: dt.datetime
    currency: str
    lines: list[RefLine] = field(default_factory=list)
    subtotal: int = 0
    discount: int = 0
    tax: int = 0  # every tax amount, inclusive tax included
    tax_in_total: int = 0  # what the tax lines add to the total (exclusive tax)

    @property
    def total(self) -> int:
        """subtotal - discount + exclusive tax (inclusive tax is inside the subtotal)."""
        return self.subtotal - self.discount + self.tax_in_total


def _py(ts: object) -> dt.datetime | None:
    if ts is None or pd.isna(ts):
        return None
    return pd.Timestamp(ts).tz_convert("UTC").to_pydatetime()


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    """Calendar months added, day clamped to the month's length, time kept."""
    index = when.year * 12 + when.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def period_start(anchor: dt.datetime, interval: str, count: int, k: int) -> dt.datetime:
    """Start of period k."""
    if interval == "month":
        return add_months(anchor, k * count)
    if interval == "year":
        return add_months(anchor, 12 * k * count)
    days = count * (7 if interval == "week" else 1)
    return anchor + dt.timedelta(days=days * k)


def key_of(subscription_id: str, start: dt.datetime) -> str:
    """The invoice key."""
    return f"{subscription_id}@{start.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def exact_charge(terms: PriceTerms, quantity: int) -> Decimal:
    """The exact amount (minor units, Decimal) of ``quantity`` of a price."""
    if terms.billing_scheme == "per_unit":
        q = quantity
        if terms.divide_by > 1:
            whole, rest = divmod(quantity, terms.divide_by)
            q = whole + (1 if rest and terms.round_up else 0)
        assert terms.unit_amount is not None
        return Decimal(q) * terms.unit_amount
    total = Decimal(0)
    lower = 0
    for i, tier in enumerate(terms.tiers):
        upper = tier.up_to
        if terms.tiers_mode == "volume":
            if upper is None or quantity <= upper:  # quantity 0: the first tier, its flat
                return Decimal(quantity) * tier.unit + tier.flat
        else:
            top = quantity if upper is None else min(quantity, upper)
            units = max(0, top - lower)
            if units > 0 or (quantity == 0 and i == 0):  # qty 0: the first tier's flat
                total += Decimal(units) * tier.unit + tier.flat
        if upper is not None:
            lower = upper
    return total


def bills_at_zero(terms: PriceTerms) -> bool:
    """A tiered price whose first tier has a flat amount bills it at quantity 0 (Stripe)."""
    return terms.billing_scheme == "tiered" and terms.tiers[0].flat > 0


def _fraction(method: str, t: dt.datetime, ps: dt.datetime, pe: dt.datetime) -> Decimal:
    if method == "days":
        left = (pe.date() - t.date()).days
        whole = (pe.date() - ps.date()).days
        return Decimal(left) / Decimal(max(whole, 1))
    left_us = (pe - t) // dt.timedelta(microseconds=1)
    whole_us = (pe - ps) // dt.timedelta(microseconds=1)
    return Decimal(left_us) / Decimal(whole_us)


def reference_price(
    snapshot: Snapshot,
    catalog: Catalog,
    start: pd.Timestamp | None,
    end: pd.Timestamp,
) -> tuple[list[RefInvoice], set[str]]:
    """(invoices, subscription ids that could not be priced)."""
    engine = catalog.engine
    mode = engine.rounding
    subs = snapshot["subscriptions"].sort_values("subscription_id")
    customers = {r.customer_id: r for r in snapshot["customers"].itertuples()}
    items = snapshot["subscription_items"]
    usage = {
        (r.subscription_id, r.meter, _py(r.period_start)): int(r.quantity)
        for r in snapshot["usage"].itertuples()
    }
    discounts = snapshot["discounts"]
    end_py = _py(end)
    start_py = _py(start) if start is not None else None
    assert end_py is not None
    out: list[RefInvoice] = []
    failed: set[str] = set()
    for sub in subs.itertuples():
        cust = customers.get(sub.customer_id)
        currency = sub.currency if not pd.isna(sub.currency) else cust.currency
        rows = items[items["subscription_id"] == sub.subscription_id].copy()
        rows["_vf"] = rows["valid_from"]
        rows = rows.sort_values(["item_id", "_vf"], kind="stable")
        item_rows = []
        try:
            for r in rows.itertuples():
                terms = catalog.price_terms(r.price_id, currency)
                item_rows.append(
                    (r.item_id, terms, int(r.quantity), _py(r.valid_from), _py(r.valid_to))
                )
            sub_discounts = _discount_rows(
                discounts[discounts["subscription_id"] == sub.subscription_id], catalog, currency
            )
        except PricingError:
            failed.add(sub.subscription_id)
            continue
        anchor = _py(sub.trial_end) or _py(sub.started_at)
        canceled = _py(sub.canceled_at)
        limit = min(end_py, canceled) if canceled else end_py
        count = int(sub.interval_count)
        every: list[tuple[dt.datetime, dt.datetime]] = []
        k = 0
        while True:
            ps = period_start(anchor, sub.interval, count, k)
            if ps >= limit:
                break
            every.append((ps, period_start(anchor, sub.interval, count, k + 1)))
            k += 1
        for ps, natural_end in every:
            pe = min(natural_end, canceled) if canceled else natural_end
            if pe > end_py or (start_py is not None and ps < start_py):
                continue
            inv = RefInvoice(key_of(sub.subscription_id, ps), sub.subscription_id, ps, pe, currency)
            _charges(inv, item_rows, usage, engine.proration, mode, natural_end)
            if not engine.prorations_discountable:
                _discount_prorations(inv, sub_discounts, every, catalog, mode)
            if not inv.lines:
                continue
            inv.subtotal = sum(line.amount for line in inv.lines)
            _discounts(inv, sub_discounts, every, catalog, mode)
            _tax(inv, cust, catalog, mode)
            out.append(inv)
    return out, failed


def _charges(
    inv: RefInvoice,
    item_rows: list[tuple[str, PriceTerms, int, dt.datetime, dt.datetime | None]],
    usage: dict[tuple[str, str, dt.datetime], int],
    proration: str,
    mode: str,
    natural_end: dt.datetime,
) -> None:
    ps, pe = inv.period_start, inv.period_end
    recurring: list[RefLine] = []
    prorations: list[tuple[int, dt.datetime, int, RefLine]] = []
    usages: list[tuple[int, RefLine]] = []
    for position, (item_id, terms, qty, vf, vt) in enumerate(item_rows):
        if terms.usage_type == "licensed":
            billed = qty > 0 or bills_at_zero(terms)
            if vf <= ps and (vt is None or ps < vt) and billed:
                amount = round_decimal(exact_charge(terms, qty), mode)
                recurring.append(RefLine("recurring", amount, terms.price_id, item_id, qty, ps, pe))
            if proration == "none" or not billed:
                continue
            for t, sign in ((vt, -1), (vf, 1)):
                if t is not None and ps < t < pe:
                    f = _fraction(proration, t, ps, natural_end)
                    amount = sign * round_decimal(exact_charge(terms, qty) * f, mode)
                    line = RefLine("proration", amount, terms.price_id, item_id, qty, t, pe)
                    line.debited_at = vf
                    prorations.append((position, t, 0 if sign < 0 else 1, line))
    # usage: one line per meter, from the metered row in force last in the period
    chosen: dict[str, tuple[int, tuple[str, PriceTerms, int, dt.datetime, dt.datetime | None]]] = {}
    for position, row in enumerate(item_rows):
        _, terms, _, vf, vt = row
        if terms.usage_type != "metered" or not (vf < pe and (vt is None or vt > ps)):
            continue
        assert terms.meter is not None
        best = chosen.get(terms.meter)
        if best is None or (vf, position) >= (best[1][3], best[0]):
            chosen[terms.meter] = (position, row)
    for position, (item_id, terms, _, _, _) in sorted(chosen.values(), key=lambda c: c[0]):
        assert terms.meter is not None
        qty = usage.get((inv.subscription_id, terms.meter, ps), 0)
        if qty > 0 or bills_at_zero(terms):
            amount = round_decimal(exact_charge(terms, qty), mode)
            usages.append(
                (position, RefLine("usage", amount, terms.price_id, item_id, qty, ps, pe))
            )
    inv.lines += recurring
    inv.lines += [p[3] for p in sorted(prorations, key=lambda p: p[:3])]
    inv.lines += [u[1] for u in usages]
    for line in inv.lines:
        line.net = line.amount
        line.product = next(r[1].product for r in item_rows if r[1].price_id == line.price_id)


@dataclass
class RefDiscount:
    """A discount row with its coupon resolved."""

    discount_id: str
    item_id: str | None
    percent: Decimal | None
    amount_off: int | None
    starts: dt.datetime
    ends: dt.datetime | None
    once: bool
    products: set[str] | None


def _discount_rows(rows: pd.DataFrame, catalog: Catalog, currency: str) -> list[RefDiscount]:
    out = []
    for r in rows.sort_values(["starts_at", "discount_id"], kind="stable").itertuples():
        percent = None if pd.isna(r.percent_off) else Decimal(str(r.percent_off))
        amount = None if pd.isna(r.amount_off) else int(r.amount_off)
        starts = _py(r.starts_at)
        ends = _py(r.ends_at)
        once = False
        products = None
        coupon_id = None if pd.isna(r.coupon_id) else r.coupon_id
        coupon = next((c for c in catalog.coupons if c.id == coupon_id), None)
        if coupon is not None:
            if percent is None and amount is None:
                if coupon.percent_off is not None:
                    percent = coupon.percent_off
                else:
                    amount = catalog.coupon_amount_off(coupon.id, currency)
                    if amount is None:
                        raise PricingError("no amount_off in this currency")
            if ends is None and coupon.duration == "repeating":
                assert starts is not None and coupon.duration_in_months
                ends = add_months(starts, coupon.duration_in_months)
            once = ends is None and coupon.duration == "once"
            if coupon.applies_to is not None:
                products = set(coupon.applies_to.products)
        if percent is None and amount is None:
            raise PricingError("discount without a value")
        assert starts is not None
        item_id = None if pd.isna(r.item_id) else r.item_id
        out.append(
            RefDiscount(r.discount_id, item_id, percent, amount, starts, ends, once, products)
        )
    return out


def _in_force(
    d: RefDiscount, at: dt.datetime, every: list[tuple[dt.datetime, dt.datetime]]
) -> bool:
    """Whether a discount is in force at an instant (a ``once`` coupon until its invoice)."""
    if d.once:
        first = next((s for s, _ in every if s >= d.starts), None)
        return first is not None and d.starts <= at <= first
    return d.starts <= at and (d.ends is None or at < d.ends)


def _discount_prorations(
    inv: RefInvoice,
    rows: list[RefDiscount],
    every: list[tuple[dt.datetime, dt.datetime]],
    catalog: Catalog,
    mode: str,
) -> None:
    """Percent-off discounts in force built into each proration line, item-level first.

    docs.stripe.com/billing/subscriptions/coupons: proration items are not discountable.
    A debit (and a classic credit) takes the discounts in force at the change; a flexible
    credit those in force when the credited row was charged (billing-mode/compare).
    """
    for line in inv.lines:
        if line.kind != "proration":
            continue
        assert line.start is not None
        at = line.start
        if line.amount < 0 and catalog.billing_mode == "flexible":
            at = max(line.debited_at or inv.period_start, inv.period_start)
        chosen = [
            d
            for d in rows
            if d.percent is not None
            and _in_force(d, at, every)
            and (d.item_id is None or d.item_id == line.item_id)
            and (d.products is None or line.product in d.products)
        ]
        ordered = [d for d in chosen if d.item_id is not None] + [
            d for d in chosen if d.item_id is None
        ]
        magnitude = abs(line.amount)
        for d in ordered:
            assert d.percent is not None
            magnitude -= round_decimal(magnitude * d.percent / 100, mode)
        line.amount = magnitude if line.amount >= 0 else -magnitude
        line.net = line.amount


def _discounts(
    inv: RefInvoice,
    rows: list[RefDiscount],
    every: list[tuple[dt.datetime, dt.datetime]],
    catalog: Catalog,
    mode: str,
) -> None:
    ps = inv.period_start
    active = []
    for d in rows:
        if d.once:
            first = next((s for s, _ in every if s >= d.starts), None)
            on = first is not None and ps == first
        else:
            on = d.starts <= ps and (d.ends is None or ps < d.ends)
        if on:
            active.append(d)
    per_line = catalog.engine.discount_rounding == "per_line"
    ordered = [d for d in active if d.item_id is not None] + [
        d for d in active if d.item_id is None
    ]
    new_lines = []
    for d in ordered:
        lines = [
            line
            for line in inv.lines
            if (line.kind != "proration" or catalog.engine.prorations_discountable)
            and (d.item_id is None or line.item_id == d.item_id)
            and (d.products is None or line.product in d.products)
        ]
        base = sum(line.net for line in lines)
        if d.percent is not None:
            if per_line:
                shares = [round_decimal(line.net * d.percent / 100, mode) for line in lines]
                wanted = sum(shares)
            else:
                wanted = round_decimal(base * d.percent / 100, mode)
        else:
            assert d.amount_off is not None
            wanted = min(d.amount_off, base)
        total = 0 if base <= 0 else min(max(wanted, 0), base)
        if not (d.percent is not None and per_line and total == wanted):
            shares, running = [], 0
            for line in lines:  # the total spread in proportion to the running sum
                before = round_decimal(Decimal(total * running) / base, mode) if base > 0 else 0
                running += line.net
                upto = round_decimal(Decimal(total * running) / base, mode) if base > 0 else 0
                shares.append(upto - before)
        for line, share in zip(lines, shares, strict=True):
            line.net -= share
        inv.discount += total
        new_lines.append(RefLine("discount", -total, ref=d.discount_id, item_id=d.item_id))
    inv.lines += new_lines


def _line_rates(line: RefLine, cust: object, catalog: Catalog) -> tuple[TaxRate, ...]:
    """A line's tax rates: its price's, else the catalog default, else the country's.

    docs.stripe.com/billing/taxes/tax-rates: line rates replace the invoice's default rates.
    """
    if catalog.tax_mode != "computed":
        return ()
    rates = {r.id: r for r in catalog.tax_rates}
    own = catalog.price(str(line.price_id)).tax_rates
    if own:
        return tuple(rates[r] for r in own)
    if catalog.default_tax_rates:
        return tuple(rates[r] for r in catalog.default_tax_rates)
    rate = catalog.tax_rate_for(str(cust.country))  # type: ignore[attr-defined]
    return () if rate is None else (rate,)


def _tax(inv: RefInvoice, cust: object, catalog: Catalog, mode: str) -> None:
    """Inclusive part first, then exclusive on what remains; exempt customers pay no tax
    and on inclusive rates pay the price less the backed-out tax."""
    exempt = bool(getattr(cust, "tax_exempt", False))
    charges = [line for line in inv.lines if line.kind in ("recurring", "proration", "usage")]
    groups: list[tuple[int, tuple[TaxRate, ...]]] = []
    if catalog.engine.tax_rounding == "per_line":
        groups = [(line.net, _line_rates(line, cust, catalog)) for line in charges]
    else:  # the invoice's lines with the same rates, summed, rounded once
        summed: dict[tuple[str, ...], tuple[int, tuple[TaxRate, ...]]] = {}
        for line in charges:
            rates = _line_rates(line, cust, catalog)
            key = tuple(r.id for r in rates)
            summed[key] = (summed.get(key, (0, rates))[0] + line.net, rates)
        groups = list(summed.values())
    per_rate: dict[str, list[int]] = {}  # rate id -> [tax amount, added to the total]
    order = {r.id: i for i, r in enumerate(catalog.tax_rates)}
    for net, rates in groups:
        if not rates:
            continue
        inclusive_sum = sum((r.percentage for r in rates if r.inclusive), Decimal(0))
        carved = 0
        for r in rates:
            if r.inclusive:
                amount = round_decimal(Decimal(net) * r.percentage / (100 + inclusive_sum), mode)
                carved += amount
                entry = per_rate.setdefault(r.id, [0, 0])
                entry[0] += 0 if exempt else amount
                entry[1] += -amount if exempt else 0
        for r in rates:
            if not r.inclusive and not exempt:
                amount = round_decimal(Decimal(net - carved) * r.percentage / 100, mode)
                entry = per_rate.setdefault(r.id, [0, 0])
                entry[0] += amount
                entry[1] += amount
    for rid in sorted(per_rate, key=order.__getitem__):
        tax, in_total = per_rate[rid]
        inv.tax += tax
        inv.tax_in_total += in_total
        inv.lines.append(RefLine("tax", in_total, ref=rid))
