"""Discounts built into proration amounts: Stripe's proration items are not discountable.

docs.stripe.com/billing/subscriptions/coupons and .../prorations: a proration item has
``discountable=false``; the subscription's discounts in force are built into its amount
(flexible billing mode's ``proration_discounts: included``), and invoice-level discounts
never apply to it again. Here every ``percent_off`` discount in force at the line's
discount instant is taken off its prorated amount, item-level discounts first, then
subscription-level ones, each in (starts_at, discount_id) order and rounded on the line.

*Unconfirmed* (Stripe publishes no example to the cent): the rounding of each step, and
``amount_off`` coupons, which are not built in (Stripe spreads them evenly in classic mode
and in proportion in flexible mode, without a documented rule for the cents); they apply
to the invoice's other lines only.

The instant (docs.stripe.com/billing/subscriptions/billing-mode/compare): a debit uses the
discounts in force at the change; a credit in ``classic`` mode too (today's price, quantity
and discounts), in ``flexible`` mode what was debited: the discounts in force when the
credited row was charged (its own start, or the period start).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shadowbill.money import Rounding, mul_div_round
from shadowbill.pricing.discounts import discount_item_keys, item_keys, once_ends
from shadowbill.pricing.inputs import PricingInputs
from shadowbill.pricing.joins import cross_by_group, rank_in_group
from shadowbill.pricing.periods import Cadence

IntArray = npt.NDArray[np.int64]


def discounted(
    inputs: PricingInputs,
    steps: Cadence,
    item: IntArray,
    instant: IntArray,
    magnitude: IntArray,
    rounding: Rounding,
) -> IntArray:
    """Each proration line's magnitude less the percent-off discounts in force at ``instant``."""
    d = inputs.discounts
    out = np.asarray(magnitude, dtype=np.int64).copy()
    if not len(d.sub) or not len(item):
        return out
    sub = inputs.items.sub[item]
    line, disc = cross_by_group(sub, d.sub, len(inputs.subs.anchor))
    ends = once_ends(inputs, steps)
    at = instant[line]
    keys = item_keys(inputs)
    target = discount_item_keys(inputs, keys)[disc]
    product = inputs.items.product[item[line]]
    ok = (
        (d.percent[disc] >= 0)
        & (d.starts[disc] <= at)
        & (at < ends[disc])
        & ((target == -1) | (target == keys[item[line]]))
        & (product >= 0)
        & d.products[disc, np.maximum(product, 0)]
    )
    line, disc, target = line[ok], disc[ok], target[ok]
    if not len(line):
        return out
    # item-level discounts first, then subscription-level, each in discount row order
    rank = rank_in_group(line, np.where(target == -1, len(d.sub), 0) + disc)
    scale = 100 * 10**inputs.percent_scale
    for r in range(int(rank.max()) + 1):  # discounts stacked on one line: a few at most
        sel = rank == r
        rows = line[sel]
        out[rows] -= mul_div_round(out[rows], d.percent[disc[sel]], scale, rounding)
    return out
