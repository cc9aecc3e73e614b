"""Charge lines from the item history: recurring fees, metered usage and prorations.

Every priced period is paired with every item row of its subscription (a join on the
subscription, done with numpy), then each rule of docs/billing-model.md is a mask:

- recurring: licensed row active at period_start, quantity > 0 (or a tiered price with a
  first-tier flat amount, which Stripe bills at quantity 0);
- usage: metered row overlapping the period, its meter's usage row for
  (subscription, meter, period_start), quantity > 0 or a first-tier flat amount (one
  line per meter: the row in force last in the period);
- proration: licensed row starting (debit) or ending (credit) strictly inside the period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from shadowbill.money import div_round
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.catalog import BillingMode, Engine, Proration
from shadowbill.pricing.inputs import PricingInputs
from shadowbill.pricing.joins import cross_by_group, last_in_group
from shadowbill.pricing.lines import (
    KINDS,
    PRORATION,
    RECURRING,
    USAGE,
    Coded,
    LinePart,
    empty_part,
)
from shadowbill.pricing.periods import Cadence, Periods
from shadowbill.pricing.proration import fraction, fraction_text, prorate
from shadowbill.pricing.proration_discounts import discounted
from shadowbill.pricing.tiers import bills_at_zero, charge_text, exact_charge

IntArray = npt.NDArray[np.int64]
_QTY_BITS = 40  # (price, quantity) packed in one int64 to find the distinct texts


@dataclass(frozen=True)
class Pairs:
    """Priced periods x item rows of the same subscription, ordered by (period, item)."""

    period: IntArray
    item: IntArray


def item_period_pairs(inputs: PricingInputs, periods: Periods) -> Pairs:
    """Every (priced period, item row) of the same subscription."""
    period, item = cross_by_group(periods.sub, inputs.items.sub, len(inputs.subs.anchor))
    return Pairs(period, item)


def _nicknames(inputs: PricingInputs) -> npt.NDArray[np.object_]:
    return np.array([t.nickname for t in inputs.prices.terms], dtype=object)


def _item_refs(inputs: PricingInputs, kind: int) -> pa.Array:
    """ "<kind>/<item_id>" for every item row (the line id after the invoice key)."""
    return tx.join(f"{KINDS[kind]}/", inputs.items.item_id)


def _charge(
    inputs: PricingInputs,
    kind: int,
    item: IntArray,
    inv: IntArray,
    quantity: IntArray,
    periods: Periods,
    engine: Engine,
    ref: Coded,
) -> LinePart:
    """Lines charging ``quantity`` of each item's price for the whole period."""
    table = inputs.prices
    price = inputs.items.price[item]
    exact = exact_charge(table, price, quantity)
    amount = div_round(exact, table.factor, engine.rounding)
    n = len(item)
    packable = bool((quantity < 2**_QTY_BITS).all())
    key = (price << _QTY_BITS) + quantity if packable else np.arange(n, dtype=np.int64)
    codes, distinct = pd.factorize(key)
    u_price = price[_first_of(codes, len(distinct))]
    u_qty = quantity[_first_of(codes, len(distinct))]
    description = tx.join(tx.counts(u_qty), " × ", tx.take(_nicknames(inputs), u_price))
    explain = charge_text(table, u_price, u_qty, table.exponent[u_price])
    codes = np.asarray(codes, dtype=np.int64)
    return LinePart(
        kind=np.full(n, kind, dtype=np.int64),
        inv=inv,
        order=item,
        side=np.zeros(n, dtype=np.int64),
        item=item,
        price=price,
        quantity=quantity,
        has_quantity=np.ones(n, dtype=bool),
        amount=amount,
        start=periods.start[inv],
        end=periods.end[inv],
        item_id=Coded(inputs.items.item_id, item),
        ref=ref,
        description=Coded(description, codes),
        explain=Coded(explain, codes),
        unit_decimal=Coded(pa.array(table.unit_decimal, pa.large_string()), price),
    )


def _first_of(codes: npt.NDArray[np.intp], n: int) -> IntArray:
    """For each distinct code 0..n-1, the first row that has it."""
    first = np.full(n, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))
    return first


def recurring_lines(
    inputs: PricingInputs, periods: Periods, pairs: Pairs, engine: Engine
) -> LinePart:
    """Licensed items active at period_start: quantity x price for the period."""
    it = inputs.items
    ps = periods.start[pairs.period]
    item = pairs.item
    price = it.price[item]
    mask = (
        ~inputs.prices.metered[price]
        & (it.valid_from[item] <= ps)
        & (ps < it.valid_to[item])
        & ((it.quantity[item] > 0) | bills_at_zero(inputs.prices, price))
    )
    item, inv = item[mask], pairs.period[mask]
    if not len(item):
        return empty_part()
    refs = Coded(_item_refs(inputs, RECURRING), item)  # one row per item is active at a time
    return _charge(inputs, RECURRING, item, inv, it.quantity[item], periods, engine, refs)


def usage_quantities(inputs: PricingInputs, periods: Periods) -> IntArray:
    """Usage per (priced period, meter) as a flat array ``[inv * meters + meter]`` (-1: none).

    A usage row belongs to the period of its subscription that starts exactly at its
    period_start; the table's key (subscription, meter, period_start) makes it unique.
    """
    n_meters = len(inputs.meters)
    out = np.full(len(periods) * n_meters, -1, dtype=np.int64)
    usage = inputs.usage
    if not len(usage.sub) or not len(periods):
        return out
    # (subscription, start second) packed in one sortable int64; periods are in that order
    offset = 2**33
    period_key = (periods.sub << 35) + (periods.start // 1_000_000 + offset)
    usage_key = (usage.sub << 35) + (usage.period_start // 1_000_000 + offset)
    pos = np.minimum(np.searchsorted(period_key, usage_key), len(periods) - 1)
    hit = (period_key[pos] == usage_key) & (periods.start[pos] == usage.period_start)
    out[pos[hit] * n_meters + usage.meter[hit]] = usage.quantity[hit]
    return out


def usage_lines(inputs: PricingInputs, periods: Periods, pairs: Pairs, engine: Engine) -> LinePart:
    """Metered items: the period's usage of their meter, priced per unit, package or tiers."""
    it = inputs.items
    table = inputs.prices
    n_meters = len(inputs.meters)
    item, inv = pairs.item, pairs.period
    mask = (
        table.metered[it.price[item]]
        & (it.valid_from[item] < periods.end[inv])
        & (it.valid_to[item] > periods.start[inv])
    )
    item, inv = item[mask], inv[mask]
    if not len(item) or not n_meters:
        return empty_part()
    meter_of_price = pd.Index(inputs.meters).get_indexer(pd.Index(table.meter))
    meter = meter_of_price[it.price[item]].astype(np.int64)
    keep = np.sort(last_in_group(inv * n_meters + meter, it.valid_from[item]))
    item, inv, meter = item[keep], inv[keep], meter[keep]
    quantity = usage_quantities(inputs, periods)[inv * n_meters + meter]
    # no usage is quantity 0, which a tiered price with a first-tier flat amount still bills
    billed = (quantity > 0) | bills_at_zero(table, it.price[item])
    quantity = np.maximum(quantity, 0)
    item, inv, meter, quantity = item[billed], inv[billed], meter[billed], quantity[billed]
    if not len(item):
        return empty_part()
    refs = Coded(
        tx.join("usage/", pa.array(inputs.meters, pa.large_string())), meter
    )  # one per meter
    return _charge(inputs, USAGE, item, inv, quantity, periods, engine, refs)


def proration_lines(
    inputs: PricingInputs,
    periods: Periods,
    pairs: Pairs,
    engine: Engine,
    steps: Cadence,
    billing_mode: BillingMode = BillingMode.FLEXIBLE,
) -> LinePart:
    """Credits for rows ending and debits for rows starting strictly inside a period, net
    of the discounts in force (Stripe: prorations are not discountable; the discounts are
    built into their amounts). ``billing_mode`` says which discounts a credit gives back."""
    if engine.proration is Proration.NONE:
        return empty_part()
    it = inputs.items
    table = inputs.prices
    item, inv = pairs.item, pairs.period
    price = it.price[item]
    licensed = ~table.metered[price] & ((it.quantity[item] > 0) | bills_at_zero(table, price))
    ps, pe = periods.start[inv], periods.end[inv]
    debit = licensed & (ps < it.valid_from[item]) & (it.valid_from[item] < pe)
    credit = licensed & (ps < it.valid_to[item]) & (it.valid_to[item] < pe)
    item = np.concatenate([item[credit], item[debit]])
    inv = np.concatenate([inv[credit], inv[debit]])
    side = np.concatenate(
        [np.zeros(int(credit.sum()), dtype=np.int64), np.ones(int(debit.sum()), dtype=np.int64)]
    )
    if not len(item):
        return empty_part()
    t = np.where(side == 1, it.valid_from[item], it.valid_to[item])
    start, natural_end = periods.start[inv], periods.natural_end[inv]
    price = it.price[item]
    quantity = it.quantity[item]
    exact = exact_charge(table, price, quantity)
    num, den = fraction(engine.proration, t, start, natural_end)
    gross = prorate(exact, table.factor, num, den, engine.rounding)
    instant = t  # a debit, and a classic credit: the discounts in force at the change
    if billing_mode is BillingMode.FLEXIBLE:  # a credit gives back what was debited
        instant = np.where(side == 1, t, np.maximum(it.valid_from[item], start))
    magnitude = gross
    if not engine.prorations_discountable:
        magnitude = discounted(inputs, steps, item, instant, gross, engine.rounding)
    amount = np.where(side == 1, magnitude, -magnitude)
    n = len(item)
    description, explain = Coded.missing(n), Coded.missing(n)
    if inputs.text:
        what = tx.join(tx.counts(quantity), " × ", tx.take(_nicknames(inputs), price))
        description = Coded.per_row(
            tx.join(
                tx.choose(side == 1, "Remaining time on ", "Unused time on "),
                what,
                " after ",
                tx.dates(t),
            )
        )
        explain = Coded.per_row(
            tx.join(
                fraction_text(engine.proration, t, start, natural_end),
                " of ",
                charge_text(table, price, quantity, table.exponent[price]),
                tx.choose(
                    magnitude != gross,
                    tx.join(
                        " less discounts ", tx.majors(gross - magnitude, table.exponent[price])
                    ),
                    "",
                ),
            )
        )
    item_ids = inputs.items.item_id.take(pa.array(item))
    ref = tx.join(
        "proration/", item_ids, tx.choose(side == 1, "/debit@", "/credit@"), tx.timestamps_iso(t)
    )
    part = LinePart(
        kind=np.full(n, PRORATION, dtype=np.int64),
        inv=inv,
        order=item,
        side=side,
        item=item,
        price=price,
        quantity=quantity,
        has_quantity=np.ones(n, dtype=bool),
        amount=np.asarray(amount, dtype=np.int64),
        start=t,
        end=periods.end[inv],
        item_id=Coded(inputs.items.item_id, item),
        ref=Coded.per_row(ref),
        description=description,
        explain=explain,
        unit_decimal=Coded(pa.array(table.unit_decimal, pa.large_string()), price),
    )
    return part.sorted()
