"""The snapshot's tables turned into aligned numpy arrays for the pricing engine.

Subscriptions are sorted by id and referred to by position; items, discounts and usage
carry that position. Prices and coupons are resolved against the catalog once per
distinct (price, currency) or coupon; subscriptions that cannot be priced are listed
in ``errors`` and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.errors import PricingError
from shadowbill.money import CURRENCY_EXPONENTS, decimal_to_scaled, parse_decimal
from shadowbill.pricing.catalog import Catalog, TaxMode
from shadowbill.pricing.periods import NEVER, OPEN, add_months, to_us
from shadowbill.pricing.price_table import PriceTable, resolve_prices
from shadowbill.snapshot.tables import Snapshot

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

ERROR_COLUMNS = {"subscription_id": "string", "price_id": "string", "reason": "string"}


@dataclass(frozen=True)
class Subscriptions:
    """One entry per subscription, sorted by subscription_id."""

    frame: pd.DataFrame  # subscription_id, customer_id, currency (as in the snapshot)
    currency: ObjArray  # upper-case ISO code
    exponent: IntArray  # minor-unit exponent of the currency
    anchor: IntArray  # trial_end, else started_at
    canceled: IntArray  # OPEN when not canceled
    interval: pd.Series
    interval_count: pd.Series
    tax_set: IntArray  # the customer's country rates: index into TaxSets.members, 0 = none
    exempt: BoolArray  # the customer is tax exempt (or reverse charge)
    zone: ObjArray | None = None  # the customer's IANA zone (None: every customer in UTC)


@dataclass(frozen=True)
class Items:
    """Item history rows sorted by (subscription, item_id, valid_from)."""

    sub: IntArray
    price: IntArray  # index into the PriceTable
    quantity: IntArray
    valid_from: IntArray
    valid_to: IntArray  # OPEN when empty
    item_id: pa.Array  # Arrow strings
    product: IntArray  # product code (position in Catalog.products)


@dataclass(frozen=True)
class Discounts:
    """Discount rows sorted by (subscription, starts_at, discount_id), resolved with coupons."""

    sub: IntArray
    item_id: ObjArray  # None for a subscription-level discount
    discount_id: ObjArray
    coupon_id: ObjArray
    percent: IntArray  # percent_off scaled by 10**percent_scale; -1 for amount_off
    amount_off: IntArray  # minor units; -1 for percent_off
    starts: IntArray
    ends: IntArray  # OPEN for forever; NEVER until "once" is placed on its first invoice
    once: BoolArray  # Stripe duration "once": the first invoice from starts_at only
    months: IntArray  # duration_in_months of a repeating coupon, else 0
    products: BoolArray  # (discounts, products): which products the discount applies to
    label: ObjArray  # coupon id, or "discount <id>"


@dataclass(frozen=True)
class Usage:
    """Usage rows: (subscription, meter code, period_start) -> quantity."""

    sub: IntArray
    meter: IntArray
    period_start: IntArray
    quantity: IntArray


@dataclass(frozen=True)
class TaxSets:
    """The sets of tax rates a line can carry; set 0 is the empty set (no tax).

    A line's set is its price's ``tax_rates``, else the catalog's ``default_tax_rates``
    (Stripe: line rates replace the invoice's default rates), else the customer's
    country rate. ``members`` is (sets, catalog tax rates).
    """

    members: BoolArray
    of_price: IntArray  # per PriceTable row (last entry: an unresolved price)
    default: int  # the catalog's default_tax_rates, 0 when none


@dataclass(frozen=True)
class PricingInputs:
    """Everything the engine reads, aligned and resolved."""

    subs: Subscriptions
    items: Items
    discounts: Discounts
    usage: Usage
    prices: PriceTable
    meters: tuple[str, ...]
    percent_scale: int  # percent_off and tax percentages are scaled by 10**percent_scale
    tax_percent: IntArray  # per catalog tax rate, scaled
    tax_sets: TaxSets
    errors: pd.DataFrame  # subscription_id, price_id, reason
    excluded: BoolArray  # per subscription: cannot be priced
    text: bool = True  # build the lines' descriptions and explanations


def _strings(series: pd.Series) -> ObjArray:
    values = series.astype("string").astype(object)
    return np.asarray(values.where(values.notna(), None), dtype=object)


def arrow_strings(series: pd.Series) -> pa.Array:
    """A pandas column as one Arrow string array."""
    values = pa.array(series.astype("string").array)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.large_string())


def lookup(values: pd.Series, keys: pa.Array) -> IntArray:
    """Position of each value in ``keys`` (-1 when absent), by Arrow's hash lookup."""
    found = pc.index_in(arrow_strings(values), value_set=keys)
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _ints(series: pd.Series, missing: int = 0) -> IntArray:
    return np.asarray(series.astype("Int64").fillna(missing).to_numpy(dtype=np.int64))


def _places(text: str) -> int:
    exp = parse_decimal(text).normalize().as_tuple().exponent
    return max(0, -int(exp)) if isinstance(exp, int) else 0


def _errors(sub_ids: ObjArray, subs: IntArray, price_ids: object, reasons: object) -> pd.DataFrame:
    """Error rows for the given subscription positions (vectorized, no per-row loop)."""
    n = len(subs)
    return pd.DataFrame(
        {
            "subscription_id": pd.Series(sub_ids[subs], dtype="string"),
            "price_id": pd.Series(
                price_ids if price_ids is not None else [None] * n, dtype="string"
            ),
            "reason": pd.Series(
                reasons if not isinstance(reasons, str) else [reasons] * n, dtype="string"
            ),
        }
    )


def prepare(snapshot: Snapshot, catalog: Catalog, *, text: bool = True) -> PricingInputs:
    """Align the snapshot's tables and resolve them against the catalog."""
    errors: list[pd.DataFrame] = []
    subs_frame = snapshot["subscriptions"].sort_values("subscription_id", kind="stable")
    subs_frame = subs_frame.reset_index(drop=True)
    customers = snapshot["customers"].drop_duplicates("customer_id")
    cust = subs_frame[["customer_id"]].merge(
        customers[["customer_id", "country", "currency", "tax_exempt"]].assign(
            timezone=customers.get("timezone")
        ),
        on="customer_id",
        how="left",
    )
    sub_ids = _strings(subs_frame["subscription_id"])
    currency = subs_frame["currency"].astype("string").fillna(cust["currency"].astype("string"))
    currency = currency.str.strip().str.upper()
    known = currency.isin(list(CURRENCY_EXPONENTS)).to_numpy(dtype=bool)
    cur = np.asarray(np.where(known, currency.fillna("").to_numpy(dtype=object), ""), dtype=object)
    exps = np.asarray(
        currency.map(CURRENCY_EXPONENTS).astype("Int64").fillna(2).to_numpy(dtype=np.int64),
        dtype=np.int64,
    )
    excluded = ~known
    errors.append(_errors(sub_ids, np.flatnonzero(~known), None, "no usable currency"))

    trial = to_us(subs_frame["trial_end"], NEVER)
    started = to_us(subs_frame["started_at"], NEVER)
    anchor = np.where(trial != NEVER, trial, started)
    no_anchor = anchor == NEVER
    errors.append(_errors(sub_ids, np.flatnonzero(no_anchor), None, "no started_at"))
    excluded |= no_anchor

    sets: dict[tuple[int, ...], int] = {(): 0}
    rate_index = {rate.id: i for i, rate in enumerate(catalog.tax_rates)}
    taxed = catalog.tax_mode is TaxMode.COMPUTED

    def set_of(ids: list[str] | tuple[str, ...]) -> int:
        members = tuple(rate_index[r] for r in ids) if taxed else ()
        return sets.setdefault(members, len(sets))

    country_set = {
        rate.country.upper(): set_of((rate.id,))
        for rate in catalog.tax_rates
        if rate.country is not None
    }
    country = cust["country"].astype("string").str.strip().str.upper()
    exempt = cust["tax_exempt"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    tax_set = country.map(country_set).astype("Int64").fillna(0).to_numpy(dtype=np.int64)
    default_set = set_of(catalog.default_tax_rates)

    subs = Subscriptions(
        frame=pd.DataFrame(
            {
                "subscription_id": subs_frame["subscription_id"].astype("string"),
                "customer_id": subs_frame["customer_id"].astype("string"),
                "currency": pd.Series(cur, dtype="string"),
            }
        ),
        currency=cur,
        exponent=exps,
        anchor=anchor,
        canceled=to_us(subs_frame["canceled_at"], OPEN),
        interval=subs_frame["interval"],
        interval_count=subs_frame["interval_count"],
        tax_set=np.asarray(tax_set, dtype=np.int64),
        exempt=exempt,
        zone=_zones(cust["timezone"]),
    )

    # ---- items
    sub_keys = arrow_strings(subs_frame["subscription_id"])
    raw_items = snapshot["subscription_items"]
    item_sub = lookup(raw_items["subscription_id"], sub_keys)
    raw_items = raw_items[item_sub >= 0].assign(_sub=item_sub[item_sub >= 0])
    raw_items = raw_items.assign(_from=to_us(raw_items["valid_from"], NEVER))
    raw_items = raw_items.sort_values(["_sub", "item_id", "_from"], kind="stable")
    raw_items = raw_items.reset_index(drop=True)
    isub = raw_items["_sub"].to_numpy(dtype=np.int64)
    table, price_idx, reasons = resolve_prices(
        catalog, raw_items["price_id"], pd.Series(cur[isub], dtype="string")
    )
    failed = np.flatnonzero(price_idx < 0)
    errors.append(
        _errors(sub_ids, isub[failed], raw_items["price_id"].to_numpy()[failed], reasons[failed])
    )
    excluded[isub[failed]] = True
    price_set = np.array([set_of(t.tax_rates) for t in table.terms] + [0], dtype=np.int64)
    members = np.zeros((len(sets), len(catalog.tax_rates)), dtype=bool)
    for members_of, index in sets.items():  # distinct sets of tax rates
        members[index, list(members_of)] = True
    tax_sets = TaxSets(members=members, of_price=price_set, default=default_set)
    product_codes = {p.id: i for i, p in enumerate(catalog.products)}
    table_product = np.array([product_codes[str(p)] for p in table.product] + [-1], dtype=np.int64)
    items = Items(
        sub=isub,
        price=price_idx,
        quantity=_ints(raw_items["quantity"]),
        valid_from=raw_items["_from"].to_numpy(dtype=np.int64),
        valid_to=to_us(raw_items["valid_to"], OPEN),
        item_id=arrow_strings(raw_items["item_id"]),
        product=table_product[price_idx],  # -1 (last entry) for an unresolved price
    )

    # ---- percentages (discounts and tax rates) share one exact scale
    raw_disc = snapshot["discounts"]
    pct_texts = set(raw_disc["percent_off"].dropna().astype(str).unique())
    pct_texts |= {str(c.percent_off) for c in catalog.coupons if c.percent_off is not None}
    pct_texts |= {str(r.percentage) for r in catalog.tax_rates}
    scale = max([_places(t) for t in pct_texts] + [0])
    tax_percent = decimal_to_scaled([str(r.percentage) for r in catalog.tax_rates], scale)

    discounts = _discounts(raw_disc, sub_keys, catalog, cur, scale, sub_ids, errors, excluded)

    # ---- usage
    meters = tuple(sorted({str(m) for m in table.meter if m is not None}))
    raw_usage = snapshot["usage"]
    usub = lookup(raw_usage["subscription_id"], sub_keys)
    umeter = lookup(raw_usage["meter"], pa.array(meters, pa.large_string()))
    keep = (usub >= 0) & (umeter >= 0)
    usage = Usage(
        sub=usub[keep].astype(np.int64),
        meter=umeter[keep].astype(np.int64),
        period_start=to_us(raw_usage["period_start"], NEVER)[keep],
        quantity=_ints(raw_usage["quantity"])[keep],
    )
    error_frame = pd.concat(
        [e for e in errors if len(e)] or [_errors(sub_ids, np.zeros(0, np.int64), None, "")]
    )
    return PricingInputs(
        subs=subs,
        items=items,
        discounts=discounts,
        usage=usage,
        prices=table,
        meters=meters,
        percent_scale=scale,
        tax_percent=tax_percent,
        tax_sets=tax_sets,
        errors=error_frame.drop_duplicates().reset_index(drop=True),
        excluded=excluded,
        text=text,
    )


def _discounts(
    raw: pd.DataFrame,
    sub_keys: pa.Array,
    catalog: Catalog,
    cur: ObjArray,
    scale: int,
    sub_ids: ObjArray,
    errors: list[pd.DataFrame],
    excluded: BoolArray,
) -> Discounts:
    """Resolve discount rows: values from the row or its coupon, windows from the duration."""
    dsub = lookup(raw["subscription_id"], sub_keys)
    raw = raw[dsub >= 0].assign(_sub=dsub[dsub >= 0])
    raw = raw.assign(_starts=to_us(raw["starts_at"], NEVER))
    raw = raw.sort_values(["_sub", "_starts", "discount_id"], kind="stable").reset_index(drop=True)
    n = len(raw)
    sub = raw["_sub"].to_numpy(dtype=np.int64)
    starts = raw["_starts"].to_numpy(dtype=np.int64)
    coupon_id = _strings(raw["coupon_id"])
    amount = _ints(raw["amount_off"], -1)
    percent = np.full(n, -1, dtype=np.int64)
    has_pct = raw["percent_off"].notna().to_numpy(dtype=bool)
    if has_pct.any():
        percent[has_pct] = decimal_to_scaled(list(raw["percent_off"][has_pct].astype(str)), scale)
    ends = to_us(raw["ends_at"], OPEN)
    explicit_end = raw["ends_at"].notna().to_numpy(dtype=bool)
    once = np.zeros(n, dtype=bool)
    months = np.zeros(n, dtype=np.int64)
    product_codes = {p.id: i for i, p in enumerate(catalog.products)}
    products = np.ones((n, len(product_codes)), dtype=bool)
    unvalued = (percent < 0) & (amount < 0)
    currency = pd.Series(cur[sub], dtype="string").str.lower()
    for coupon in catalog.coupons:  # catalog coupons, each applied to its rows at once
        rows = coupon_id == coupon.id
        if not rows.any():
            continue
        fill = rows & unvalued
        if coupon.percent_off is not None:
            percent[fill] = decimal_to_scaled([str(coupon.percent_off)], scale)[0]
        else:
            by_currency = {c: o.amount_off for c, o in coupon.currency_options.items()} | {
                str(coupon.currency): int(coupon.amount_off or 0)
            }
            off = currency.map(by_currency).astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
            amount[fill] = off[fill]
            missing = np.flatnonzero(fill & (off < 0))
            errors.append(
                _errors(
                    sub_ids,
                    sub[missing],
                    None,
                    f"coupon {coupon.id!r} has no amount_off in the subscription's currency",
                )
            )
            excluded[sub[missing]] = True
        open_rows = rows & ~explicit_end
        if coupon.duration == "once":
            once |= open_rows
            ends[open_rows] = NEVER
        elif coupon.duration == "repeating":
            months[rows] = int(coupon.duration_in_months or 0)
            ends[open_rows] = add_months(starts[open_rows], months[open_rows])
        if coupon.applies_to is not None:
            allowed = np.zeros(len(product_codes), dtype=bool)
            allowed[[product_codes[p] for p in coupon.applies_to.products]] = True
            products[rows] = allowed
    still = np.flatnonzero((percent < 0) & (amount < 0))
    errors.append(
        _errors(
            sub_ids,
            sub[still],
            None,
            "discount "
            + raw["discount_id"].astype("string").iloc[still].reset_index(drop=True)
            + " has no percent_off or amount_off and its coupon is not in the catalog",
        )
    )
    excluded[sub[still]] = True
    if (percent > 100 * 10**scale).any():
        raise PricingError("a discount has percent_off above 100; it would bill a negative amount")
    discount_id = _strings(raw["discount_id"])
    label = (
        raw["coupon_id"].astype("string").fillna("discount " + raw["discount_id"].astype("string"))
    )
    return Discounts(
        sub=sub,
        item_id=_strings(raw["item_id"]),
        discount_id=discount_id,
        coupon_id=coupon_id,
        percent=percent,
        amount_off=amount,
        starts=starts,
        ends=ends,
        once=once,
        months=months,
        products=products,
        label=_strings(label),
    )


def _zones(timezone: pd.Series) -> ObjArray | None:
    """Each subscription's customer zone (UTC where none or unknown); None when all are UTC."""
    names = timezone.astype("string").str.strip().fillna("UTC")
    for name in names.unique():
        try:
            ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            names = names.mask(names == name, "UTC")
    if (names == "UTC").all():
        return None
    return np.asarray(names.to_numpy(dtype=object), dtype=object)
