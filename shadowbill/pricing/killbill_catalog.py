"""A Kill Bill catalog (XML) as a legacy catalog in shadowbill's YAML vocabulary.

Kill Bill keeps each tenant's catalog as XML (``tenant_kvs`` or a file): products, plans
with phases (fixed and recurring prices per currency, usage sections with tiered blocks),
currencies. Each phase becomes prices named after Kill Bill's own phase names, so that the
phase names stored in ``subscription_events`` and ``invoice_items`` are the price ids:

- a recurring price: ``<phase>`` (licensed, the billing period's interval);
- a fixed price: ``<phase>-fixed`` (one-off, no recurrence);
- a consumable usage section with tiered blocks: the usage section's name (unique in a
  Kill Bill catalog, and what ``invoice_items.usage_name`` holds), metered on meter
  ``<unit>``; graduated tiers in minor units per unit, block size folded into the price.

The XML is parsed with defusedxml (no entities, no external references: catalog files can
be hostile) and bounded in size. Amounts become minor units exactly, on their digits.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from shadowbill.errors import CatalogError
from shadowbill.money import CURRENCY_EXPONENTS

MAX_BYTES = 5 * 1024 * 1024  # a catalog of thousands of plans is well under this
PERIODS = {
    "DAILY": ("day", 1),
    "WEEKLY": ("week", 1),
    "BIWEEKLY": ("week", 2),
    "THIRTY_DAYS": ("day", 30),
    "MONTHLY": ("month", 1),
    "QUARTERLY": ("month", 3),
    "BIANNUAL": ("month", 6),
    "ANNUAL": ("year", 1),
    "BIENNIAL": ("year", 2),
}


def _text(node: Element | None, path: str, where: str) -> str:
    found = node.find(path) if node is not None else None
    if found is None or found.text is None or not found.text.strip():
        raise CatalogError(f"{where}: missing <{path}>")
    return found.text.strip()


def _minor(value: str, currency: str, where: str) -> str:
    """A major-unit price as minor units, exact: an integer text, or a decimal text below a cent."""
    try:
        amount = Decimal(value) * (10 ** CURRENCY_EXPONENTS[currency])
    except (InvalidOperation, KeyError):
        raise CatalogError(f"{where}: {value!r} {currency} is not an amount") from None
    if amount < 0:
        raise CatalogError(f"{where}: {value!r} {currency} is negative")
    normal = amount.normalize()
    text = format(normal, "f")
    return text


def _prices(node: Element | None, where: str) -> dict[str, str]:
    """currency -> minor units (text) of a ``<...Price>``/``<prices>`` element."""
    out: dict[str, str] = {}
    if node is None:
        return out
    for price in node.findall("price"):
        currency = _text(price, "currency", where).upper()
        if currency not in CURRENCY_EXPONENTS:
            raise CatalogError(f"{where}: unknown currency {currency!r}")
        out[currency.lower()] = _minor(_text(price, "value", where), currency, where)
    return out


def _amounts(by_currency: dict[str, str], main: str) -> dict[str, Any]:
    """unit_amount(_decimal) in the main currency plus currency_options for the others."""

    def one(minor: str) -> dict[str, Any]:
        return {"unit_amount": int(minor)} if "." not in minor else {"unit_amount_decimal": minor}

    out: dict[str, Any] = one(by_currency[main])
    others = {c: one(v) for c, v in sorted(by_currency.items()) if c != main}
    if others:
        out["currency_options"] = others
    return out


def _tiers(usage: Element, main: str, where: str) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The meter (unit) and graduated tiers per currency of a consumable usage section."""
    unit = ""
    per_currency: dict[str, list[dict[str, Any]]] = {}
    reach = 0
    tiers = usage.findall("tiers/tier")
    if not tiers:
        raise CatalogError(f"{where}: a usage section without tiers is not supported")
    for i, tier in enumerate(tiers):
        blocks = tier.findall("blocks/tieredBlock")
        if len(blocks) != 1:
            raise CatalogError(f"{where}: tier {i + 1} must have exactly one tieredBlock")
        block = blocks[0]
        unit = _text(block, "unit", where)
        size = Decimal(_text(block, "size", where))
        top = Decimal(_text(block, "max", where))
        last = i == len(tiers) - 1
        if top < 0 or last:
            up_to: int | str = "inf"
        else:
            reach += int(top * size)
            up_to = reach
        for currency, minor in _prices(block.find("prices"), where).items():
            per_unit = format((Decimal(minor) / size).normalize(), "f")
            per_currency.setdefault(currency, []).append(
                {"up_to": up_to, "unit_amount_decimal": per_unit}
            )
    if main not in per_currency:
        raise CatalogError(f"{where}: no {main.upper()} price")
    return unit, per_currency


def convert(xml_text: str, *, name: str | None = None) -> dict[str, Any]:
    """A Kill Bill catalog's XML text as a legacy catalog (a plain dict, as YAML holds it)."""
    if len(xml_text.encode()) > MAX_BYTES:
        raise CatalogError(f"the catalog is larger than {MAX_BYTES // 1024 // 1024} MB")
    try:
        root = safe_xml.fromstring(xml_text)
    except (safe_xml.ParseError, DefusedXmlException) as exc:
        raise CatalogError(f"not a readable Kill Bill catalog: {exc}") from None
    if root.tag != "catalog":
        raise CatalogError(f"not a Kill Bill catalog: the root element is <{root.tag}>")
    currencies = [c.text.strip().lower() for c in root.findall("currencies/currency") if c.text]
    if not currencies:
        raise CatalogError("the catalog lists no <currencies>")
    main = currencies[0]
    products = [
        {"id": p.get("name", ""), "name": p.get("prettyName") or p.get("name", "")}
        for p in root.findall("products/product")
    ]
    prices: list[dict[str, Any]] = []
    for plan in root.findall("plans/plan"):
        plan_name = plan.get("name", "")
        product = _text(plan, "product", f"plan {plan_name}")
        phases = [*plan.findall("initialPhases/phase"), *plan.findall("finalPhase")]
        for phase in phases:
            kind = (phase.get("type") or "").lower()
            phase_name = f"{plan_name}-{kind}"
            where = f"plan {plan_name} phase {kind}"
            fixed = _prices(phase.find("fixed/fixedPrice"), where)
            if fixed and any(v != "0" for v in fixed.values()):
                prices.append(
                    {
                        "id": f"{phase_name}-fixed",
                        "product": product,
                        "nickname": f"{plan_name} {kind} fixed fee",
                        "currency": main,
                        **_amounts(fixed, main),
                    }
                )
            recurring = phase.find("recurring")
            if recurring is None and fixed and all(v == "0" for v in fixed.values()):
                # a free phase (a trial): a $0 price, so the phase's item rows have a price
                prices.append(
                    {
                        "id": phase_name,
                        "product": product,
                        "nickname": f"{plan_name} {kind} (free)",
                        "currency": main,
                        **_amounts(fixed, main),
                        "recurring": {"interval": "month", "interval_count": 1},
                    }
                )
            if recurring is not None:
                period = _text(recurring, "billingPeriod", where)
                if period not in PERIODS:
                    raise CatalogError(f"{where}: billing period {period} is not supported")
                amounts = _prices(recurring.find("recurringPrice"), where)
                if amounts:
                    interval, count = PERIODS[period]
                    prices.append(
                        {
                            "id": phase_name,
                            "product": product,
                            "nickname": f"{plan_name} {kind}",
                            "currency": main,
                            **_amounts(amounts, main),
                            "recurring": {
                                "interval": interval,
                                "interval_count": count,
                                "usage_type": "licensed",
                            },
                        }
                    )
            for usage in phase.findall("usages/usage"):
                uwhere = f"{where} usage {usage.get('name')}"
                if (usage.get("billingMode") or "IN_ARREAR") != "IN_ARREAR":
                    raise CatalogError(f"{uwhere}: only IN_ARREAR usage is supported")
                period = _text(usage, "billingPeriod", uwhere)
                interval, count = PERIODS.get(period, ("month", 1))
                unit, tiers = _tiers(usage, main, uwhere)
                option = {c: {"tiers": t} for c, t in sorted(tiers.items()) if c != main}
                price: dict[str, Any] = {
                    "id": usage.get("name") or f"{phase_name}-{unit}",
                    "product": product,
                    "nickname": f"{plan_name} {kind} {unit}",
                    "currency": main,
                    "billing_scheme": "tiered",
                    "tiers_mode": "graduated",
                    "tiers": tiers[main],
                    "recurring": {
                        "interval": interval,
                        "interval_count": count,
                        "usage_type": "metered",
                        "meter": unit,
                    },
                }
                if option:
                    price["currency_options"] = option
                prices.append(price)
    catalog_name = name or _text(root, "catalogName", "catalog")
    return {
        "catalog": catalog_name,
        "description": f"Imported from the Kill Bill catalog {_text(root, 'catalogName', 'catalog')}",
        "currency": main,
        # Kill Bill prorates by day and rounds half up (its default rounding mode).
        "engine": {
            "proration": "days",
            "rounding": "half_up",
            "discount_rounding": "per_invoice",
            "tax_rounding": "per_line",  # a tax plugin taxes each item
        },
        "products": products,
        "prices": prices,
        "coupons": [],
        "tax_rates": [],
    }


def import_catalog(
    xml_path: Path, out_path: Path, *, tax_rates: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Convert a Kill Bill catalog file into a legacy catalog YAML file; returns what was written."""
    import yaml

    try:
        text = Path(xml_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{xml_path}: cannot read the catalog ({exc})") from None
    try:
        data = convert(text)
    except CatalogError as exc:
        raise CatalogError(f"{xml_path}: {exc}") from None
    data["tax_rates"] = list(tax_rates or [])
    header = (
        f"# Converted by `shadowbill catalog import --from killbill` from {Path(xml_path).name}.\n"
        "# Price ids are Kill Bill phase names (<phase>, <phase>-fixed) and usage names.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    Path(out_path).write_text(header + body, encoding="utf-8")
    return data
