"""What a quantity of a price costs, exactly: per unit, package (transform_quantity),
graduated and volume tiers (Stripe's pricing models), over whole arrays of lines.

Amounts are scaled integers (``PriceTable.scale``); the caller rounds once per line.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.money import Rounding, mul_div_round
from shadowbill.pricing import explain_text as tx
from shadowbill.pricing.price_table import PriceTable

IntArray = npt.NDArray[np.int64]


def _product(a: IntArray, b: IntArray) -> IntArray:
    """Exact int64 product (MoneyError if it leaves the 64-bit range)."""
    return mul_div_round(a, b, 1, Rounding.HALF_UP)


def billed_quantity(table: PriceTable, price: IntArray, quantity: IntArray) -> IntArray:
    """Quantity after transform_quantity: ceil or floor of quantity / divide_by (Stripe)."""
    d = table.divide_by[price]
    up = table.round_up[price]
    q = np.asarray(quantity, dtype=np.int64)
    return np.where(up, (q + d - 1) // d, q // d)


def tier_units(table: PriceTable, price: IntArray, quantity: IntArray) -> IntArray:
    """Units falling in each tier, shape (lines, tiers): graduated split, or all units in the
    one volume tier that contains the quantity."""
    q = np.asarray(quantity, dtype=np.int64)[:, None]
    up = table.tier_up_to[price]  # -1 padding beyond the price's last tier
    lower = np.concatenate([np.zeros((len(price), 1), dtype=np.int64), up[:, :-1]], axis=1)
    lower = np.where(lower < 0, np.iinfo(np.int64).max, lower)
    valid = up >= 0
    graduated = np.where(valid, np.maximum(np.minimum(q, up) - lower, 0), 0)
    # volume: the first tier whose up_to reaches the quantity takes all units
    reaches = valid & (q <= up)
    first = np.argmax(reaches, axis=1)
    volume = np.zeros_like(graduated)
    volume[np.arange(len(price)), first] = q[:, 0]
    return np.where(table.volume[price][:, None], volume, graduated)


def flat_charged(units: IntArray, quantity: IntArray) -> npt.NDArray[np.bool_]:
    """(lines, tiers): whose flat amount is charged: every tier with units, and the first
    tier for quantity 0 (Stripe: quantity 0 bills the first tier's flat amount, volume and
    graduated; docs.stripe.com/products-prices/pricing-models)."""
    charged = units > 0
    charged[:, 0] |= np.asarray(quantity) == 0
    return charged


def bills_at_zero(table: PriceTable, price: IntArray) -> npt.NDArray[np.bool_]:
    """Prices that bill something for quantity 0: tiered with a first-tier flat amount."""
    price = np.asarray(price, dtype=np.int64)
    return np.asarray(table.tiered[price] & (table.tier_flat[price, 0] > 0), dtype=bool)


def exact_charge(table: PriceTable, price: IntArray, quantity: IntArray) -> IntArray:
    """The exact scaled amount of ``quantity`` units of each line's price."""
    price = np.asarray(price, dtype=np.int64)
    quantity = np.asarray(quantity, dtype=np.int64)
    out = _product(billed_quantity(table, price, quantity), table.unit[price])
    tiered = table.tiered[price]
    if tiered.any():
        idx = np.flatnonzero(tiered)
        p = price[idx]
        units = tier_units(table, p, quantity[idx])
        unit = table.tier_unit[p]
        flat = np.where(flat_charged(units, quantity[idx]), table.tier_flat[p], 0)
        total = np.zeros(len(idx), dtype=np.int64)
        for j in range(units.shape[1]):  # tiers of the widest price
            total = total + _product(units[:, j], unit[:, j]) + flat[:, j]
        out[idx] = total
    return out


def charge_text(table: PriceTable, price: IntArray, quantity: IntArray, exps: IntArray) -> pa.Array:
    """Why a quantity costs what it does: "12 x 99.00", "tier 2: 4,000 x 0.0075 + flat 10.00",
    "12,345 -> 13 x 1,000 (rounded up) x 1.00".

    Each pricing model formats only its own lines; the texts are put back in line order
    with one take. (``exps`` is kept for callers; each price row knows its currency.)
    """
    price = np.asarray(price, dtype=np.int64)
    quantity = np.asarray(quantity, dtype=np.int64)
    tiered = table.tiered[price]
    packaged = ~tiered & (table.divide_by[price] > 1)
    plain = ~tiered & ~packaged
    parts: list[pa.Array] = []
    position = np.zeros(len(price), dtype=np.int64)
    offset = 0
    for mask, render in ((plain, _per_unit_text), (packaged, _package_text), (tiered, _tier_text)):
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        parts.append(render(table, price[rows], quantity[rows]))
        position[rows] = offset + np.arange(len(rows))
        offset += len(rows)
    if not parts:
        return pa.array([], pa.large_string())
    return pa.concat_arrays(parts).take(pa.array(position))


def _per_unit_text(table: PriceTable, price: IntArray, quantity: IntArray) -> pa.Array:
    return tx.join(tx.counts(quantity), " x ", tx.take(table.unit_text, price))


def _package_text(table: PriceTable, price: IntArray, quantity: IntArray) -> pa.Array:
    how = tx.choose(table.round_up[price], " (rounded up) x ", " (rounded down) x ")
    return tx.join(
        tx.counts(quantity),
        " -> ",
        tx.counts(billed_quantity(table, price, quantity)),
        " x ",
        tx.counts(table.divide_by[price]),
        how,
        tx.take(table.unit_text, price),
    )


def tier_suffixes(table: PriceTable) -> npt.NDArray[np.object_]:
    """(prices, tiers): " x 0.0075" or " x 0.00 + flat 10.00" for each price's tier."""
    n, width = table.tier_unit.shape
    exps = np.repeat(table.exponent, width)
    unit = _scaled_text(table.tier_unit.ravel(), table.factor, exps)
    flat = _scaled_text(table.tier_flat.ravel(), table.factor, exps)
    with_flat = tx.join(" x ", unit, " + flat ", flat)
    text = tx.choose(table.tier_flat.ravel() > 0, with_flat, tx.join(" x ", unit))
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object).reshape(n, width)


def _tier_text(table: PriceTable, price: IntArray, quantity: IntArray) -> pa.Array:
    units = tier_units(table, price, quantity)
    charged = flat_charged(units, quantity)
    suffixes = tier_suffixes(table)
    pieces = []
    for j in range(units.shape[1]):  # tiers of the widest price
        piece = tx.join(f"tier {j + 1}: ", tx.counts(units[:, j]), tx.take(suffixes[:, j], price))
        empty = pa.nulls(len(price), pa.large_string())
        pieces.append(pc.if_else(pa.array(charged[:, j]), piece, empty))
    joined = pc.binary_join_element_wise(
        *pieces, pa.scalar("; ", pa.large_string()), null_handling="skip"
    )
    return tx.choose(table.volume[price], tx.join("volume ", joined), joined)


def _scaled_text(scaled: IntArray, factor: int, exps: IntArray) -> pa.Array:
    """A scaled minor-unit amount in major units, exact: 75 at factor 100, USD -> "0.0075"."""
    places = exps + int(np.log10(factor))
    # strip trailing zeros of the fraction down to the currency's own decimals
    value = np.asarray(scaled, dtype=np.int64)
    p = places.copy()
    while True:
        drop = (p > exps) & (value % 10 == 0)
        if not drop.any():
            break
        value = np.where(drop, value // 10, value)
        p = np.where(drop, p - 1, p)
    return tx.majors(value, p)
