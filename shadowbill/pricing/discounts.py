"""Discounts on invoices: which are active, what they take off, and from which lines.

A discount is active on an invoice when ``starts_at <= period_start < ends_at``; a
coupon's duration gives the window when the row has no ``ends_at`` (once: the first
invoice from ``starts_at``; repeating: ``duration_in_months`` from ``starts_at``;
forever: open). Proration lines are not discountable (Stripe builds the discounts in
force into their amounts, ``proration_discounts``). Line-level discounts (with ``item_id``)
apply first to that item's lines, then subscription-level ones to what is left; several of a level apply one after
another in (starts_at, discount_id) order. The discount of a base is
``round(base x p / 100)`` (per invoice) or the sum of each line's rounded share (per
line, Stripe), or ``min(amount_off, base)``; never below zero nor above the base.
Each line's share (needed for per-line tax and for what the next discount sees) is the
per-line rounding, or else the total spread over the lines in proportion to their
running sum: ``share_i = round(D x C_i / base) - round(D x C_(i-1) / base)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.money import mul_div_round
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.catalog import Engine, Granularity
from shadowbill.pricing.inputs import Discounts, PricingInputs
from shadowbill.pricing.joins import SumOverflow, cross_by_group, cumsum_by, rank_in_group, sum_by
from shadowbill.pricing.lines import DISCOUNT, Coded, LinePart, empty_part
from shadowbill.pricing.periods import Cadence, Periods, first_start_at_or_after, months_between

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def item_keys(inputs: PricingInputs) -> IntArray:
    """A code per item row naming its item (same subscription and item_id)."""
    it = inputs.items
    if not len(it.sub):
        return np.zeros(0, dtype=np.int64)
    ids = np.asarray(pc.fill_null(it.item_id, "").to_numpy(zero_copy_only=False), dtype=object)
    new = np.ones(len(it.sub), dtype=bool)
    new[1:] = (it.sub[1:] != it.sub[:-1]) | (ids[1:] != ids[:-1])
    return np.asarray(np.cumsum(new) - 1, dtype=np.int64)


def discount_item_keys(inputs: PricingInputs, keys: IntArray) -> IntArray:
    """The item code each line-level discount targets (-2 when the item does not exist)."""
    d = inputs.discounts
    items = pd.DataFrame(
        {
            "sub": inputs.items.sub,
            "item_id": pd.array(inputs.items.item_id, dtype="string"),
            "key": keys,
        }
    ).drop_duplicates(["sub", "item_id"])
    wanted = pd.DataFrame(
        {"sub": d.sub, "item_id": pd.array(d.item_id, dtype="string"), "row": np.arange(len(d.sub))}
    )
    found = wanted.merge(items, on=["sub", "item_id"], how="left").sort_values("row")
    key = found["key"].astype("Int64").fillna(-2).to_numpy(dtype=np.int64)
    return np.asarray(np.where(pd.isna(d.item_id), -1, key), dtype=np.int64)


@dataclass(frozen=True)
class ChargeLines:
    """The charge lines of all invoices in invoice order: what discounts apply to."""

    inv: IntArray
    item: IntArray
    amount: IntArray
    # Stripe: proration items are not discountable (their discounts are built in)
    discountable: BoolArray


def once_ends(inputs: PricingInputs, steps: Cadence) -> IntArray:
    """Window ends with Stripe's ``once`` placed just after the first period from starts_at."""
    d = inputs.discounts
    ends = d.ends.copy()
    rows = np.flatnonzero(d.once)
    if not len(rows):
        return ends
    sub = d.sub[rows]
    sub_steps = steps.take(sub)
    first = first_start_at_or_after(inputs.subs.anchor[sub], sub_steps, d.starts[rows])
    ends[rows] = first + 1
    return ends


def discount_lines(
    inputs: PricingInputs,
    steps: Cadence,
    periods: Periods,
    charges: ChargeLines,
    issued: BoolArray,
    engine: Engine,
) -> tuple[LinePart, IntArray]:
    """(discount lines, each charge line's amount after its discounts).

    One line per (issued invoice, active discount), even when it takes nothing off.
    ``charges`` are ordered by invoice then line order; the net amounts come in that order.
    """
    d = inputs.discounts
    net = charges.amount.copy()
    if not len(d.sub) or not len(charges.inv):
        return empty_part(), net
    ends = once_ends(inputs, steps)
    disc, inv = cross_by_group(d.sub, periods.sub, len(inputs.subs.anchor))
    ps = periods.start[inv]
    active = (d.starts[disc] <= ps) & (ps < ends[disc]) & issued[inv]
    disc, inv = disc[active], inv[active]
    if not len(disc):
        return empty_part(), net
    keys = item_keys(inputs)
    target = discount_item_keys(inputs, keys)[disc]
    line_level = target != -1
    rank = rank_in_group(_group(inv, target, len(keys)), disc)
    line_key = keys[charges.item]
    line_product = inputs.items.product[charges.item]
    totals = np.zeros(len(disc), dtype=np.int64)
    bases = np.zeros(len(disc), dtype=np.int64)
    per_line = engine.discount_rounding is Granularity.PER_LINE
    scale = 100 * 10**inputs.percent_scale
    for level in (True, False):  # line-level discounts first, then subscription-level
        for r in range(int(rank.max()) + 1 if len(rank) else 0):  # discounts stacked per level
            sel = np.flatnonzero((line_level == level) & (rank == r))
            if not len(sel):
                continue
            left, line = cross_by_group(inv[sel], charges.inv, len(periods))
            pair = sel[left]
            ok = inputs.discounts.products[disc[pair], np.maximum(line_product[line], 0)] & (
                line_product[line] >= 0
            )
            ok &= charges.discountable[line]
            if level:
                ok &= line_key[line] == target[pair]
            left, line, pair = left[ok], line[ok], pair[ok]
            remaining = net[line]
            try:
                base = sum_by(left, remaining, len(sel))
            except SumOverflow as exc:  # name the invoices, not the discounts
                raise SumOverflow(inv[sel[exc.groups]]) from None
            pct = d.percent[disc[sel]]
            is_pct = pct >= 0
            line_pct = np.maximum(pct[left], 0)
            rounded = mul_div_round(remaining, line_pct, scale, engine.rounding)
            if per_line:
                wanted = sum_by(left, rounded, len(sel))
            else:
                wanted = mul_div_round(base, np.maximum(pct, 0), scale, engine.rounding)
            wanted = np.where(is_pct, wanted, np.minimum(d.amount_off[disc[sel]], base))
            total = np.where(base <= 0, 0, np.clip(wanted, 0, np.maximum(base, 0)))
            exact_lines = per_line & is_pct & (total == wanted)
            running = cumsum_by(left, remaining)
            safe_base = np.maximum(base, 1)[left]
            upto = mul_div_round(total[left], running, safe_base, engine.rounding)
            before = mul_div_round(total[left], running - remaining, safe_base, engine.rounding)
            share = np.where(exact_lines[left], rounded, upto - before)
            net[line] -= share
            totals[sel] = total
            bases[sel] = base
    return _lines(inputs, periods, disc, inv, totals, bases, line_level), net


def _group(inv: IntArray, target: IntArray, n_items: int) -> IntArray:
    """Discounts stack within (invoice, item targeted or -1 for the whole subscription)."""
    return np.asarray(inv * (n_items + 2) + (target + 2), dtype=np.int64)


def _lines(
    inputs: PricingInputs,
    periods: Periods,
    disc: IntArray,
    inv: IntArray,
    totals: IntArray,
    bases: IntArray,
    line_level: BoolArray,
) -> LinePart:
    """One discount line per (invoice, discount)."""
    n = len(disc)
    if not n:
        return empty_part()
    d = inputs.discounts
    description, explain = Coded.missing(n), Coded.missing(n)
    if inputs.text:
        description, explain = _texts(inputs, d, disc, inv, periods, totals, bases)
    part = LinePart(
        kind=np.full(n, DISCOUNT, dtype=np.int64),
        inv=inv,
        order=np.where(line_level, disc, disc + len(d.sub)),  # applied order: line-level first
        side=np.zeros(n, dtype=np.int64),
        item=np.full(n, -1, dtype=np.int64),
        price=np.full(n, -1, dtype=np.int64),
        quantity=np.zeros(n, dtype=np.int64),
        has_quantity=np.zeros(n, dtype=bool),
        amount=-totals,
        start=periods.start[inv],
        end=periods.end[inv],
        item_id=Coded(pa.array(d.item_id, pa.large_string()), disc),
        ref=Coded(tx.join("discount/", pa.array(d.discount_id, pa.large_string())), disc),
        description=description,
        explain=explain,
        unit_decimal=Coded.missing(n),
    )
    return part.sorted()


def _texts(
    inputs: PricingInputs,
    d: Discounts,
    disc: np.ndarray,
    inv: np.ndarray,
    periods: Periods,
    totals: np.ndarray,
    bases: np.ndarray,
) -> tuple[Coded, Coded]:
    """Each discount line's description and explanation."""
    exps = inputs.subs.exponent[periods.sub[inv]]
    label = tx.take(d.label, disc)
    pct = d.percent[disc]
    is_pct = pct >= 0
    off = tx.choose(
        is_pct,
        tx.join(tx.decimals(np.maximum(pct, 0), inputs.percent_scale), "%"),
        tx.majors(np.maximum(d.amount_off[disc], 0), exps),
    )
    ps = periods.start[inv]
    month = months_between(d.starts[disc], ps) + 1
    months = d.months[disc]
    when = tx.choose(
        months > 0,
        tx.join(" (month ", tx.counts(month), " of ", tx.counts(months), ")"),
        tx.choose(d.once[disc], " (once)", ""),
    )
    capped = ~is_pct & (d.amount_off[disc] > totals)
    explain = tx.join(off, " off ", label, when, " on ", tx.majors(bases, exps))
    explain = tx.choose(capped, tx.join(explain, ", capped at the amount"), explain)
    description = tx.join(label, " (", off, " off)")
    return Coded.per_row(description), Coded.per_row(explain)
