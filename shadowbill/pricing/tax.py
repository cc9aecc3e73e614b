"""Tax lines (Stripe's manual tax rates): several rates per line, inclusive and exclusive.

Each charge line carries a set of rates: its price's ``tax_rates``, else the catalog's
``default_tax_rates``, else the customer's country rate (line rates replace the default
rates; docs.stripe.com/billing/taxes/tax-rates). On a line's net amount N (after its
discounts; discounts always come before tax), with inclusive rates i summing to P:

- inclusive tax of rate i: ``round(N x p_i / (100 + P))``, carved out of the line;
- exclusive tax of rate e: ``round((N - inclusive taxes) x p_e / 100)``, added on top
  (the inclusive part first, then the exclusive part on what remains).

``tax_rounding: per_line`` rounds each line's tax (Stripe's default); ``per_invoice`` sums
the lines of an invoice carrying the same rates first and rounds once. An invoice's ``tax``
is the sum of every tax amount, inclusive tax included (docs.stripe.com/api/invoices/object);
its ``total`` adds only the exclusive tax. A tax-exempt (or reverse-charge) customer pays no
tax: on an exclusive rate the price, on an inclusive rate the price less the backed-out tax,
shown as a negative tax line. One tax line per (invoice, rate); its amount is what it adds
to the total, so the lines of an invoice always add up to its total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from shadowbill.money import mul_div_round
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.catalog import Catalog, Granularity
from shadowbill.pricing.inputs import PricingInputs
from shadowbill.pricing.joins import sum_by
from shadowbill.pricing.lines import TAX, Coded, LinePart, empty_part
from shadowbill.pricing.periods import Periods

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class InvoiceTax:
    """Per priced period: the tax reported (inclusive included) and what the total adds."""

    reported: IntArray
    in_total: IntArray


def line_tax_sets(
    inputs: PricingInputs, periods: Periods, inv: IntArray, item: IntArray
) -> IntArray:
    """Each charge line's set of tax rates (index into ``inputs.tax_sets.members``)."""
    sets = inputs.tax_sets
    own = sets.of_price[inputs.items.price[item]]
    fallback = sets.default if sets.default > 0 else inputs.subs.tax_set[periods.sub[inv]]
    return np.asarray(np.where(own > 0, own, fallback), dtype=np.int64)


def tax_lines(
    inputs: PricingInputs,
    catalog: Catalog,
    periods: Periods,
    line_inv: IntArray,
    line_item: IntArray,
    line_net: IntArray,
) -> tuple[LinePart, InvoiceTax]:
    """(one tax line per invoice and rate, the invoices' tax).

    ``line_inv``, ``line_item`` and ``line_net`` describe every charge line: its invoice,
    item row and amount after its discounts.
    """
    n_inv = len(periods)
    none = InvoiceTax(np.zeros(n_inv, dtype=np.int64), np.zeros(n_inv, dtype=np.int64))
    line_set = line_tax_sets(inputs, periods, line_inv, line_item)
    taxed = line_set > 0
    if not taxed.any():
        return empty_part(), none
    engine = catalog.engine
    members = inputs.tax_sets.members
    n_sets, n_rates = members.shape
    inv_of, set_of = line_inv[taxed], line_set[taxed]
    if engine.tax_rounding is Granularity.PER_LINE:
        group_inv, group_set, base = inv_of, set_of, line_net[taxed]
    else:  # lines of an invoice with the same rates are summed, then rounded once
        codes, uniques = pd.factorize(inv_of * n_sets + set_of)
        group_inv, group_set = uniques // n_sets, uniques % n_sets
        base = sum_by(np.asarray(codes, dtype=np.int64), line_net[taxed], len(uniques))
    group_inv = np.asarray(group_inv, dtype=np.int64)
    group, rate = np.nonzero(members[group_set])
    group, rate = group.astype(np.int64), rate.astype(np.int64)
    pct = inputs.tax_percent[rate]
    inclusive_of_rate = np.array([r.inclusive for r in catalog.tax_rates], dtype=bool)
    inclusive = inclusive_of_rate[rate]
    hundred = 100 * 10**inputs.percent_scale
    inclusive_sum = (members * np.where(inclusive_of_rate, inputs.tax_percent, 0)).sum(axis=1)
    inc_denominator = hundred + inclusive_sum[group_set[group]]
    inc_tax = mul_div_round(base[group], pct, inc_denominator, engine.rounding)
    inc_tax = np.where(inclusive, inc_tax, 0)
    remains = base - sum_by(group, inc_tax, len(base))  # what the exclusive rates tax
    exc_tax = mul_div_round(remains[group], pct, np.full(len(group), hundred), engine.rounding)
    amount = np.where(inclusive, inc_tax, exc_tax)
    taxed_base = np.where(inclusive, base[group], remains[group])
    exempt = inputs.subs.exempt[periods.sub[group_inv[group]]]
    keep = ~exempt | inclusive  # an exempt customer's exclusive rates leave no line
    group, rate, amount, taxed_base = group[keep], rate[keep], amount[keep], taxed_base[keep]
    inclusive, exempt = inclusive[keep], exempt[keep]
    reported = np.where(exempt, 0, amount)
    in_total = np.where(inclusive, np.where(exempt, -amount, 0), amount)

    # one line per (invoice, rate)
    pair_inv = group_inv[group]
    codes, uniques = pd.factorize(pair_inv * n_rates + rate)
    codes = np.asarray(codes, dtype=np.int64)
    order = np.lexsort((uniques % n_rates, uniques // n_rates))
    inv = np.asarray(uniques // n_rates, dtype=np.int64)[order]
    r = np.asarray(uniques % n_rates, dtype=np.int64)[order]
    n = len(inv)

    def per_line(values: IntArray) -> IntArray:
        return sum_by(codes, values, n)[order]

    line_amount = per_line(in_total)
    line_reported = per_line(reported)
    line_tax = per_line(amount)
    line_base = per_line(taxed_base)
    line_exempt = np.zeros(n, dtype=bool)
    line_exempt[np.argsort(order)[codes]] = exempt  # the same for every pair of a line
    tax = InvoiceTax(
        reported=sum_by(inv, line_reported, n_inv), in_total=sum_by(inv, line_amount, n_inv)
    )
    exps = inputs.subs.exponent[periods.sub[inv]]
    names = np.array([t.display_name for t in catalog.tax_rates], dtype=object)
    ids = np.array([t.id for t in catalog.tax_rates], dtype=object)
    description, explain = Coded.missing(n), Coded.missing(n)
    if inputs.text:
        description, explain = _texts(
            inputs,
            names,
            inputs.tax_percent[r],
            r,
            inclusive_of_rate[r],
            line_exempt,
            line_tax,
            line_base,
            exps,
        )
    part = LinePart(
        kind=np.full(n, TAX, dtype=np.int64),
        inv=inv,
        order=r,
        side=np.zeros(n, dtype=np.int64),
        item=np.full(n, -1, dtype=np.int64),
        price=np.full(n, -1, dtype=np.int64),
        quantity=np.zeros(n, dtype=np.int64),
        has_quantity=np.zeros(n, dtype=bool),
        amount=line_amount,
        start=periods.start[inv],
        end=periods.end[inv],
        item_id=Coded.missing(n),
        ref=Coded(tx.join("tax/", pa.array(ids, pa.large_string())), r),
        description=description,
        explain=explain,
        unit_decimal=Coded.missing(n),
    )
    return part, tax


def _texts(
    inputs: PricingInputs,
    names: np.ndarray,
    pct: np.ndarray,
    r: np.ndarray,
    inc: BoolArray,
    exempt: BoolArray,
    amount: np.ndarray,
    base: np.ndarray,
    exps: np.ndarray,
) -> tuple[Coded, Coded]:
    """Each tax line's description and explanation."""
    pct_text = tx.join(tx.decimals(pct, inputs.percent_scale), "%")
    name = tx.take(names, r)
    included = tx.join(
        tx.majors(amount, exps), " ", name, " (", pct_text, ") in ", tx.majors(base, exps)
    )
    explain = tx.choose(
        inc,
        tx.choose(
            exempt,
            tx.join("removes ", included, ": the customer is tax exempt"),
            tx.join("includes ", included),
        ),
        tx.join(pct_text, " ", name, " on ", tx.majors(base, exps)),
    )
    description = tx.join(
        name,
        " (",
        pct_text,
        tx.choose(inc, tx.choose(exempt, " included, exempt)", " included)"), ")"),
    )
    return Coded.per_row(description), Coded.per_row(explain)
