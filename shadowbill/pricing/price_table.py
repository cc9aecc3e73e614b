"""The catalog's prices resolved per (price, currency) into arrays the engine indexes.

Each (price_id, currency) pair used by the snapshot gets one row. Unit and tier amounts
are integers scaled by ``10**scale`` minor units, exact (``unit_amount_decimal`` "0.75"
at scale 2 is 75), so every charge is computed in int64 and rounded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.errors import PricingError
from shadowbill.money import decimal_to_scaled, exponent, format_decimal_minor
from shadowbill.pricing.catalog import Catalog, PriceTerms

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
MAX_SCALE = 12  # Stripe: unit_amount_decimal has at most 12 decimal places


def _places(value: Decimal) -> int:
    exp = value.normalize().as_tuple().exponent
    return max(0, -int(exp)) if isinstance(exp, int) else 0


@dataclass(frozen=True)
class PriceTable:
    """Resolved prices: row i is ``terms[i]``; amounts scaled by ``10**scale``."""

    terms: tuple[PriceTerms, ...]
    scale: int
    metered: BoolArray
    meter: npt.NDArray[np.object_]  # meter name or None
    tiered: BoolArray
    volume: BoolArray
    unit: IntArray  # per-unit amount (0 for tiered)
    divide_by: IntArray
    round_up: BoolArray
    tier_up_to: IntArray  # (prices, max_tiers): inclusive bound; OPEN for inf; -1 padding
    tier_unit: IntArray  # (prices, max_tiers)
    tier_flat: IntArray  # (prices, max_tiers)
    n_tiers: IntArray
    product: npt.NDArray[np.object_]
    exponent: IntArray  # minor-unit exponent of each row's currency
    unit_text: npt.NDArray[np.object_]  # "99.00", "0.0075" (major units) for per-unit prices
    unit_decimal: npt.NDArray[np.object_]  # unit_amount_decimal string (minor units)

    @property
    def factor(self) -> int:
        """``10**scale``: the denominator that turns a scaled amount into minor units."""
        return int(10**self.scale)


def resolve_prices(
    catalog: Catalog, price_ids: pd.Series, currencies: pd.Series
) -> tuple[PriceTable, IntArray, npt.NDArray[np.object_]]:
    """Resolve each (price_id, currency) row: (table, row -> table index or -1, reason or None).

    The catalog is asked once per distinct pair, never once per row.
    """
    p_codes, p_values = pd.factorize(price_ids.astype("string").fillna(""))
    c_codes, c_values = pd.factorize(currencies.astype("string").str.lower().fillna(""))
    codes, pair_codes = pd.factorize(p_codes.astype(np.int64) * len(c_values) + c_codes)
    p_list, c_list = list(p_values), list(c_values)
    uniques = [
        (str(p_list[int(c) // len(c_list)]), str(c_list[int(c) % len(c_list)])) for c in pair_codes
    ]
    terms: list[PriceTerms] = []
    index_of_unique = np.full(len(uniques) + 1, -1, dtype=np.int64)
    reason_of_unique = np.full(len(uniques) + 1, None, dtype=object)
    for u, (price_id, currency) in enumerate(uniques):  # distinct catalog prices, not rows
        try:
            if not price_id or not currency:
                raise PricingError("the item has no price_id or the subscription no currency")
            t = catalog.price_terms(str(price_id), str(currency))
        except PricingError as exc:
            reason_of_unique[u] = str(exc)
            continue
        index_of_unique[u] = len(terms)
        terms.append(t)
    codes = np.where(codes >= 0, codes, len(uniques))
    return build_table(terms), index_of_unique[codes], reason_of_unique[codes]


def build_table(terms: list[PriceTerms]) -> PriceTable:
    """Arrays of the resolved terms at the smallest exact common scale."""
    amounts: list[Decimal] = []
    for t in terms:
        if t.unit_amount is not None:
            amounts.append(t.unit_amount)
        for tier in t.tiers:
            amounts += [tier.unit, tier.flat]
    scale = max([_places(a) for a in amounts] + [0])
    if scale > MAX_SCALE:
        raise PricingError(f"a catalog amount has {scale} decimal places; at most {MAX_SCALE}")
    n = len(terms)
    width = max([len(t.tiers) for t in terms] + [1])
    up_to = np.full((n, width), -1, dtype=np.int64)
    tier_unit = np.zeros((n, width), dtype=np.int64)
    tier_flat = np.zeros((n, width), dtype=np.int64)
    for i, t in enumerate(terms):  # catalog prices and their tiers
        for j, tier in enumerate(t.tiers):
            up_to[i, j] = np.iinfo(np.int64).max if tier.up_to is None else tier.up_to
            tier_unit[i, j], tier_flat[i, j] = decimal_to_scaled([tier.unit, tier.flat], scale)
    unit_values = [t.unit_amount if t.unit_amount is not None else Decimal(0) for t in terms]
    return PriceTable(
        terms=tuple(terms),
        scale=scale,
        metered=np.array([t.usage_type == "metered" for t in terms], dtype=bool),
        meter=np.array([t.meter for t in terms], dtype=object),
        tiered=np.array([t.billing_scheme == "tiered" for t in terms], dtype=bool),
        volume=np.array([t.tiers_mode == "volume" for t in terms], dtype=bool),
        unit=decimal_to_scaled(unit_values, scale),
        divide_by=np.array([t.divide_by for t in terms], dtype=np.int64),
        round_up=np.array([t.round_up for t in terms], dtype=bool),
        tier_up_to=up_to,
        tier_unit=tier_unit,
        tier_flat=tier_flat,
        n_tiers=np.array([len(t.tiers) for t in terms], dtype=np.int64),
        product=np.array([t.product for t in terms], dtype=object),
        exponent=np.array([exponent(t.currency) for t in terms], dtype=np.int64),
        unit_text=np.array(
            [format_decimal_minor(v, t.currency) for v, t in zip(unit_values, terms, strict=True)],
            dtype=object,
        ),
        unit_decimal=np.array(
            [None if t.unit_amount is None else _decimal_string(t.unit_amount) for t in terms],
            dtype=object,
        ),
    )


def _decimal_string(value: Decimal) -> str:
    """A decimal in plain notation without trailing zeros ("3900", "0.75")."""
    text = f"{value.normalize():f}"
    return text
