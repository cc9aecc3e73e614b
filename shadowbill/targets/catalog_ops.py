"""Catalog objects as target operations: products, billing meters, prices and tax rates.

Each builder turns one catalog object into the :class:`Operation` that creates it on
Stripe, with Stripe's own create parameters, so that the target catalog can be created
exactly as the YAML says:

- products, ``POST /v1/products``: created with the catalog's product id (Stripe lets
  the caller choose it), found again by ``{"id": ...}``;
- billing meters, ``POST /v1/billing/meters``: ``display_name``, ``event_name`` (the
  catalog's ``recurring.meter``), ``default_aggregation.formula = sum``; meters have no
  metadata, so they are found by their unique ``event_name``;
- prices, ``POST /v1/prices``: ``currency``, ``unit_amount`` (int) or
  ``unit_amount_decimal`` (a decimal string), ``currency_options`` for every other
  currency, ``recurring`` (with ``meter`` for metered prices), ``billing_scheme``,
  ``tiers_mode`` and ``tiers`` (``up_to: "inf"`` for the last), ``transform_quantity``,
  ``tax_behavior`` when the catalog sets one, ``lookup_key`` (the catalog's, else the
  price id) by which they are found again;
- tax rates, ``POST /v1/tax_rates``: ``display_name``, ``percentage`` as a decimal
  string, ``inclusive``, ``country``; found by ``metadata.shadowbill_key``.

Amounts are integers of minor units or decimal strings; no float is ever produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from shadowbill.pricing.catalog import Catalog, CurrencyOption, Price, Product, TaxRate, Tier
from shadowbill.targets.model import Operation, ref, ref_key

METADATA_KEY: Final = "shadowbill_key"


def product_key(product_id: str) -> str:
    """The operation key of a product."""
    return f"product:{product_id}"


def meter_key(event_name: str) -> str:
    """The operation key of a billing meter (one per catalog meter name)."""
    return f"meter:{event_name}"


def price_key(price_id: str) -> str:
    """The operation key of a price."""
    return f"price:{price_id}"


def coupon_key(coupon_id: str) -> str:
    """The operation key of a coupon (by its Stripe id, which shadowbill chooses)."""
    return f"coupon:{coupon_id}"


def tax_rate_key(tax_rate_id: str) -> str:
    """The operation key of a tax rate (by its catalog id)."""
    return f"tax_rate:{tax_rate_id}"


def decimal_text(value: Decimal) -> str:
    """A decimal as plain text without an exponent (``Decimal("1E+1")`` is ``"10"``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def refs_in(value: Any) -> list[str]:
    """Every operation key a nested params value refers to through :func:`ref`."""
    out: list[str] = []
    if isinstance(value, Mapping):
        for v in value.values():
            out.extend(refs_in(v))
    elif isinstance(value, list | tuple):
        for v in value:
            out.extend(refs_in(v))
    else:
        key = ref_key(value)
        if key is not None:
            out.append(key)
    return out


def operation(
    batch_id: str,
    key: str,
    kind: Any,
    params: dict[str, Any],
    lookup: Mapping[str, str],
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
) -> Operation:
    """An operation whose ``depends_on`` lists the keys its params refer to, sorted."""
    return Operation(
        batch_id=batch_id,
        key=key,
        kind=kind,
        params=params,
        lookup=dict(lookup),
        depends_on=tuple(sorted(set(refs_in(params)))),
        subscription_id=subscription_id,
        customer_id=customer_id,
    )


def product_operation(batch_id: str, product: Product) -> Operation:
    """Create the product under its catalog id (found again by that id)."""
    key = product_key(product.id)
    params: dict[str, Any] = {
        "id": product.id,
        "name": product.name,
        "metadata": {METADATA_KEY: key},
    }
    if product.description:
        params["description"] = product.description
    return operation(batch_id, key, "product", params, {"id": product.id})


def meter_operation(batch_id: str, event_name: str) -> Operation:
    """Create the billing meter a metered price reports usage to (summed per period)."""
    params: dict[str, Any] = {
        "display_name": event_name,
        "event_name": event_name,
        "default_aggregation": {"formula": "sum"},
    }
    return operation(batch_id, meter_key(event_name), "meter", params, {"event_name": event_name})


def _amount(whole: int | None, decimal: Decimal | None, name: str) -> dict[str, Any]:
    if decimal is not None:
        return {f"{name}_decimal": decimal_text(decimal)}
    if whole is not None:
        return {name: int(whole)}
    return {}


def tier_params(tiers: list[Tier]) -> list[dict[str, Any]]:
    """Stripe's ``tiers``: ``up_to`` an integer or ``"inf"``, unit and flat amounts."""
    out = []
    for tier in tiers:
        entry: dict[str, Any] = {"up_to": "inf" if tier.up_to == "inf" else int(tier.up_to)}
        entry.update(_amount(tier.unit_amount, tier.unit_amount_decimal, "unit_amount"))
        entry.update(_amount(tier.flat_amount, tier.flat_amount_decimal, "flat_amount"))
        out.append(entry)
    return out


def _currency_option(option: CurrencyOption, billing_scheme: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if billing_scheme == "tiered":
        out["tiers"] = tier_params(option.tiers or [])
    else:
        out.update(_amount(option.unit_amount, option.unit_amount_decimal, "unit_amount"))
    if option.tax_behavior is not None:
        out["tax_behavior"] = option.tax_behavior
    return out


def price_lookup_key(price: Price) -> str:
    """The lookup key a price is found by: the catalog's, else its id."""
    return price.lookup_key or price.id


def price_operation(batch_id: str, price: Price) -> Operation:
    """Create the price exactly as the catalog defines it (amounts in every currency)."""
    key = price_key(price.id)
    params: dict[str, Any] = {
        "currency": price.currency,
        "product": ref(product_key(price.product)),
        "billing_scheme": price.billing_scheme,
        "lookup_key": price_lookup_key(price),
        "metadata": {**price.metadata, METADATA_KEY: key, "shadowbill_price_id": price.id},
    }
    if price.nickname:
        params["nickname"] = price.nickname
    if price.billing_scheme == "tiered":
        params["tiers_mode"] = price.tiers_mode
        params["tiers"] = tier_params(price.tiers or [])
    else:
        params.update(_amount(price.unit_amount, price.unit_amount_decimal, "unit_amount"))
    options = {
        cur: _currency_option(opt, price.billing_scheme)
        for cur, opt in sorted(price.currency_options.items())
        if cur != price.currency
    }
    if options:
        params["currency_options"] = options
    if price.recurring is not None:
        rec = price.recurring
        recurring: dict[str, Any] = {
            "interval": rec.interval,
            "interval_count": rec.interval_count,
            "usage_type": rec.usage_type,
        }
        if rec.usage_type == "metered" and rec.meter:
            recurring["meter"] = ref(meter_key(rec.meter))
        params["recurring"] = recurring
    if price.transform_quantity is not None:
        params["transform_quantity"] = {
            "divide_by": price.transform_quantity.divide_by,
            "round": price.transform_quantity.round,
        }
    if price.tax_behavior != "unspecified":
        params["tax_behavior"] = price.tax_behavior
    return operation(batch_id, key, "price", params, {"lookup_key": price_lookup_key(price)})


def tax_rate_operation(batch_id: str, rate: TaxRate) -> Operation:
    """Create a manual tax rate (percentage as a decimal string), found by metadata."""
    key = tax_rate_key(rate.id)
    params: dict[str, Any] = {
        "display_name": rate.display_name,
        "percentage": decimal_text(rate.percentage),
        "inclusive": bool(rate.inclusive),
        **({"country": rate.country.upper()} if rate.country else {}),
        "metadata": {METADATA_KEY: key, "shadowbill_tax_rate_id": rate.id},
    }
    if rate.description:
        params["description"] = rate.description
    return operation(batch_id, key, "tax_rate", params, {f"metadata.{METADATA_KEY}": key})


def is_metered(price: Price) -> bool:
    """Whether a price bills usage reported to a meter (no quantity on the item)."""
    return price.recurring is not None and price.recurring.usage_type == "metered"


def catalog_operations(
    batch_id: str, catalog: Catalog, price_ids: set[str], tax_rate_ids: set[str]
) -> list[Operation]:
    """Products, meters, prices and tax rates for the given prices and tax rates only."""
    prices = [p for p in catalog.prices if p.id in price_ids]
    products = {p.product for p in prices}
    meters = {
        p.recurring.meter for p in prices if is_metered(p) and p.recurring and p.recurring.meter
    }
    ops = [product_operation(batch_id, catalog.product(pid)) for pid in sorted(products)]
    ops += [meter_operation(batch_id, name) for name in sorted(meters)]
    ops += [price_operation(batch_id, p) for p in prices]
    ops += [tax_rate_operation(batch_id, t) for t in catalog.tax_rates if t.id in tax_rate_ids]
    return ops
