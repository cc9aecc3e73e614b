"""Tax lines: the catalog's rate for the customer's country, unless the customer is exempt.

Taxable base = subtotal - discount. Exclusive rate p: ``round(base x p / 100)``, or the
sum of each line's ``round(net_i x p / 100)`` after its share of discount (per line,
Stripe). Inclusive rates: the amounts already contain the tax; the tax line is 0 and
says how much is included (``round(base x p / (100 + p))``), and ``tax`` stays 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from shadowbill.money import mul_div_round
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.catalog import Catalog, Granularity
from shadowbill.pricing.inputs import PricingInputs
from shadowbill.pricing.joins import sum_by
from shadowbill.pricing.lines import TAX, Coded, LinePart, empty_part
from shadowbill.pricing.periods import Periods

IntArray = npt.NDArray[np.int64]


def tax_lines(
    inputs: PricingInputs,
    catalog: Catalog,
    periods: Periods,
    issued: npt.NDArray[np.bool_],
    base: IntArray,
    line_inv: IntArray,
    line_net: IntArray,
) -> tuple[LinePart, IntArray]:
    """(one tax line per issued invoice whose customer has a rate, exclusive tax per invoice).

    ``base`` is subtotal - discount per invoice; ``line_net`` each charge line's amount
    after its discounts (for per-line rounding).
    """
    n_inv = len(periods)
    tax = np.zeros(n_inv, dtype=np.int64)
    rate = inputs.subs.tax_rate[periods.sub]
    taxed = issued & (rate >= 0)
    if not taxed.any():
        return empty_part(), tax
    engine = catalog.engine
    pct = inputs.tax_percent[np.maximum(rate, 0)]
    inclusive_of_rate = np.array([r.inclusive for r in catalog.tax_rates], dtype=bool)
    inclusive = inclusive_of_rate[np.maximum(rate, 0)] & taxed
    hundred = 100 * 10**inputs.percent_scale
    denom = np.where(inclusive, hundred + pct, hundred)
    if engine.tax_rounding is Granularity.PER_LINE:
        line_tax = mul_div_round(line_net, pct[line_inv], denom[line_inv], engine.rounding)
        amount = sum_by(line_inv, line_tax, n_inv)
    else:
        amount = mul_div_round(base, pct, denom, engine.rounding)
    amount = np.where(taxed, amount, 0)
    tax = np.where(inclusive, 0, amount)

    inv = np.flatnonzero(taxed)
    n = len(inv)
    r = rate[inv]
    exps = inputs.subs.exponent[periods.sub[inv]]
    names = np.array([t.display_name for t in catalog.tax_rates], dtype=object)
    ids = np.array([t.id for t in catalog.tax_rates], dtype=object)
    description, explain = Coded.missing(n), Coded.missing(n)
    if inputs.text:
        description, explain = _texts(
            inputs, names, pct[inv], r, inclusive[inv], amount[inv], base[inv], exps
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
        amount=tax[inv],
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
    inc: np.ndarray,
    amount: np.ndarray,
    base: np.ndarray,
    exps: np.ndarray,
) -> tuple[Coded, Coded]:
    """Each tax line's description and explanation."""
    pct_text = tx.join(tx.decimals(pct, inputs.percent_scale), "%")
    name = tx.take(names, r)
    explain = tx.choose(
        inc,
        tx.join(
            "includes ",
            tx.majors(amount, exps),
            " ",
            name,
            " (",
            pct_text,
            ") in ",
            tx.majors(base, exps),
        ),
        tx.join(pct_text, " ", name, " on ", tx.majors(base, exps)),
    )
    description = tx.join(name, " (", pct_text, tx.choose(inc, " included)", ")"))
    return Coded.per_row(description), Coded.per_row(explain)
