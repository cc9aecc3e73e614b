"""Catalogs: a price book in Stripe's vocabulary plus the engine rules of the billing system.

A catalog YAML holds ``products``, ``prices``, ``coupons`` and ``tax_rates`` with Stripe's
own parameter names, so the new catalog can be created on Stripe as it is, and an
``engine`` block naming where a legacy engine differed from Stripe (proration by day,
rounding, discount and tax rounding per invoice). Defaults are Stripe's.

Amounts are integer minor units of the price's currency; ``*_decimal`` amounts are
decimal strings of minor units that may go below one (``"0.75"`` cents).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from shadowbill.errors import CatalogError, PricingError
from shadowbill.money import Rounding, is_currency
from shadowbill.yaml_source import (
    KeyPath,
    format_key,
    load_yaml,
    problems_message,
    validate,
)

# ------------------------------------------------------------------ value types ----

# Every number a catalog holds (amounts in minor units, tier bounds, divisors, counts) is
# at most 10^12: Stripe's own limits are far lower (an amount of 8 digits), and the bound
# keeps every product of an amount and a quantity of the estate inside int64.
MAX_CATALOG_NUMBER = 10**12
MAX_DECIMAL_PLACES = 12  # Stripe's unit_amount_decimal takes at most 12 decimal places


def _decimal_text(value: Any) -> Decimal:
    """Accept a decimal string or a YAML number (via its text, never float arithmetic)."""
    if isinstance(value, bool):
        raise ValueError("expected a decimal number, got a boolean")
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, int | float | str):
        try:
            out = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"expected a decimal number, got {value!r}") from None
    else:
        raise ValueError(f"expected a decimal number, got {value!r}")
    if not out.is_finite():
        raise ValueError(f"expected a finite decimal number, got {value!r}")
    if out < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    if out > MAX_CATALOG_NUMBER:
        raise ValueError(f"must be at most {MAX_CATALOG_NUMBER:,} (10^12), got {value!r}")
    exponent = out.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        raise ValueError(f"at most {MAX_DECIMAL_PLACES} decimal places, got {value!r}")
    return out


def _currency_code(value: Any) -> str:
    """A currency in Stripe's lower-case ISO 4217 form."""
    if not is_currency(value):
        raise ValueError(f"expected an ISO 4217 currency code, got {value!r}")
    return str(value).strip().lower()


DecimalText = Annotated[Decimal, BeforeValidator(_decimal_text)]
Currency = Annotated[str, BeforeValidator(_currency_code)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_CATALOG_NUMBER, strict=True)]
PositiveInt = Annotated[int, Field(ge=1, le=MAX_CATALOG_NUMBER, strict=True)]


class Proration(StrEnum):
    """How a mid-period change is prorated: Stripe by the second, some engines by day."""

    SECONDS = "seconds"
    DAYS = "days"
    NONE = "none"


class Granularity(StrEnum):
    """Where a percentage is rounded: on each line (Stripe) or once per invoice."""

    PER_LINE = "per_line"
    PER_INVOICE = "per_invoice"


class BillingMode(StrEnum):
    """Stripe's ``billing_mode``: how prorations and mid-period changes are computed.

    ``flexible`` is the default of new subscriptions from API version 2025-09-30.clover
    (docs.stripe.com/billing/subscriptions/billing-mode); ``classic`` is the older one.
    """

    CLASSIC = "classic"
    FLEXIBLE = "flexible"


class TaxMode(StrEnum):
    """Where a catalog's tax comes from.

    ``computed``: the catalog's tax rates (Stripe's manual tax rates); ``external``: an
    outside engine (Avalara, Stripe Tax) whose tax is taken as issued, so comparisons
    weigh amounts before tax and report tax apart (cause ``tax_external``); ``none``: no tax.
    """

    COMPUTED = "computed"
    EXTERNAL = "external"
    NONE = "none"


MAX_TAX_RATES = 10  # Stripe: at most 10 tax rates per line item or as default_tax_rates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------- models ----


class Engine(_Strict):
    """The billing engine's rules; defaults are Stripe's documented behaviour."""

    proration: Proration = Proration.SECONDS
    rounding: Rounding = Rounding.HALF_UP
    discount_rounding: Granularity = Granularity.PER_LINE
    tax_rounding: Granularity = Granularity.PER_LINE
    # Stripe: proration items are not discountable, the discounts in force are built into
    # their amounts; a legacy engine may instead discount them like any other line
    prorations_discountable: bool = False


class Product(_Strict):
    """A Stripe Product: what is sold."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str | None = None


class Tier(_Strict):
    """One tier of a tiered price; ``up_to`` is an inclusive upper bound or ``inf``."""

    up_to: NonNegInt | Literal["inf"]
    unit_amount: NonNegInt | None = None
    unit_amount_decimal: DecimalText | None = None
    flat_amount: NonNegInt | None = None
    flat_amount_decimal: DecimalText | None = None


class TransformQuantity(_Strict):
    """Stripe's package pricing: bill ``quantity / divide_by`` rounded up or down."""

    divide_by: PositiveInt
    round: Literal["up", "down"]


class Recurring(_Strict):
    """How often a price bills, and whether per seat (licensed) or per use (metered)."""

    interval: Literal["day", "week", "month", "year"]
    interval_count: PositiveInt = 1
    usage_type: Literal["licensed", "metered"] = "licensed"
    meter: str | None = None


class CurrencyOption(_Strict):
    """The amounts of a price in another currency (Stripe's ``currency_options``)."""

    unit_amount: NonNegInt | None = None
    unit_amount_decimal: DecimalText | None = None
    tiers: list[Tier] | None = None
    tax_behavior: Literal["inclusive", "exclusive", "unspecified"] | None = None


class Price(_Strict):
    """A Stripe Price: how much and how often a product is charged."""

    id: str = Field(min_length=1)
    product: str
    nickname: str | None = None
    currency: Currency
    currency_options: dict[Currency, CurrencyOption] = Field(default_factory=dict)
    billing_scheme: Literal["per_unit", "tiered"] = "per_unit"
    unit_amount: NonNegInt | None = None
    unit_amount_decimal: DecimalText | None = None
    tiers_mode: Literal["graduated", "volume"] | None = None
    tiers: list[Tier] | None = None
    transform_quantity: TransformQuantity | None = None
    recurring: Recurring | None = None
    tax_behavior: Literal["inclusive", "exclusive", "unspecified"] = "unspecified"
    # the tax rates of this price's lines (Stripe: the subscription item's ``tax_rates``);
    # they replace the catalog's default_tax_rates on those lines
    tax_rates: list[str] = Field(default_factory=list, max_length=MAX_TAX_RATES)
    lookup_key: str | None = None
    active: bool = True
    metadata: dict[str, str] = Field(default_factory=dict)


class CouponCurrencyOption(_Strict):
    """A coupon's ``amount_off`` in another currency."""

    amount_off: NonNegInt


class AppliesTo(_Strict):
    """Restrict a coupon to the lines of some products."""

    products: list[str] = Field(min_length=1)


class Coupon(_Strict):
    """A Stripe Coupon: a percentage or fixed amount off, for once, N months or forever."""

    id: str = Field(min_length=1)
    name: str | None = None
    percent_off: DecimalText | None = None
    amount_off: NonNegInt | None = None
    currency: Currency | None = None
    currency_options: dict[Currency, CouponCurrencyOption] = Field(default_factory=dict)
    duration: Literal["once", "repeating", "forever"] = "once"
    duration_in_months: PositiveInt | None = None
    applies_to: AppliesTo | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class TaxRate(_Strict):
    """A Stripe TaxRate; with a country, the fallback rate of that country's customers."""

    id: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    percentage: DecimalText
    inclusive: bool = False
    country: str | None = Field(None, min_length=2, max_length=2)
    description: str | None = None


# ---------------------------------------------------------------- price terms ----


@dataclass(frozen=True)
class TierTerms:
    """One tier in a given currency: inclusive bound (None = inf), unit and flat amounts."""

    up_to: int | None
    unit: Decimal
    flat: Decimal


@dataclass(frozen=True)
class PriceTerms:
    """Everything the engine needs to charge a price in one currency."""

    price_id: str
    product: str
    currency: str
    nickname: str
    billing_scheme: str
    unit_amount: Decimal | None
    tiers_mode: str | None
    tiers: tuple[TierTerms, ...]
    divide_by: int
    round_up: bool
    usage_type: str
    meter: str | None
    interval: str
    interval_count: int
    tax_behavior: str
    tax_rates: tuple[str, ...] = ()


def _unit(amount: int | None, decimal: Decimal | None) -> Decimal | None:
    if decimal is not None:
        return decimal
    return None if amount is None else Decimal(amount)


def _tier_terms(tiers: list[Tier]) -> tuple[TierTerms, ...]:
    return tuple(
        TierTerms(
            up_to=None if t.up_to == "inf" else int(t.up_to),
            unit=_unit(t.unit_amount, t.unit_amount_decimal) or Decimal(0),
            flat=_unit(t.flat_amount, t.flat_amount_decimal) or Decimal(0),
        )
        for t in tiers
    )


# ---------------------------------------------------------------------- catalog ----


class CatalogShape(_Strict):
    """A catalog's structure as written in YAML (cross-references not yet checked)."""

    catalog: str = Field(min_length=1)
    description: str | None = None
    currency: Currency
    engine: Engine = Field(default_factory=Engine)
    billing_mode: BillingMode = BillingMode.FLEXIBLE
    tax_mode: TaxMode = TaxMode.COMPUTED
    # Stripe's subscription ``default_tax_rates`` for every subscription of this catalog;
    # empty: each customer's country rate (the fallback)
    default_tax_rates: list[str] = Field(default_factory=list, max_length=MAX_TAX_RATES)
    products: list[Product] = Field(default_factory=list)
    prices: list[Price] = Field(default_factory=list)
    coupons: list[Coupon] = Field(default_factory=list)
    tax_rates: list[TaxRate] = Field(default_factory=list)


def _check_amounts(
    where: KeyPath,
    amounts: CurrencyOption | Price,
    billing_scheme: str,
    problems: list[tuple[KeyPath, str]],
) -> None:
    """Per-unit prices need exactly one unit amount; tiered prices need valid tiers."""
    has_amount = amounts.unit_amount is not None
    has_decimal = amounts.unit_amount_decimal is not None
    if billing_scheme == "per_unit":
        if has_amount == has_decimal:
            problems.append(
                (
                    (*where, "unit_amount"),
                    "a per_unit price needs exactly one of unit_amount or unit_amount_decimal",
                )
            )
        if amounts.tiers:
            problems.append(((*where, "tiers"), "tiers need billing_scheme: tiered"))
        return
    if has_amount or has_decimal:
        problems.append(
            (
                (*where, "unit_amount"),
                "a tiered price takes its amounts from tiers, not unit_amount",
            )
        )
    if not amounts.tiers:
        problems.append(((*where, "tiers"), "a tiered price needs at least one tier"))
        return
    previous = -1
    for i, tier in enumerate(amounts.tiers):
        at = (*where, "tiers", i)
        if (tier.unit_amount is not None) and (tier.unit_amount_decimal is not None):
            problems.append(
                ((*at, "unit_amount"), "give unit_amount or unit_amount_decimal, not both")
            )
        if (tier.flat_amount is not None) and (tier.flat_amount_decimal is not None):
            problems.append(
                ((*at, "flat_amount"), "give flat_amount or flat_amount_decimal, not both")
            )
        if all(
            v is None
            for v in (
                tier.unit_amount,
                tier.unit_amount_decimal,
                tier.flat_amount,
                tier.flat_amount_decimal,
            )
        ):
            problems.append((at, "a tier needs a unit amount or a flat amount"))
        last = i == len(amounts.tiers) - 1
        if tier.up_to == "inf":
            if not last:
                problems.append(((*at, "up_to"), "only the last tier may be up_to: inf"))
            continue
        if last:
            problems.append(((*at, "up_to"), "the last tier must be up_to: inf"))
        if int(tier.up_to) <= previous:
            problems.append(
                ((*at, "up_to"), f"tiers must ascend: {tier.up_to} is not above {previous}")
            )
        previous = int(tier.up_to)


def _duplicates(ids: list[str]) -> dict[int, str]:
    seen: set[str] = set()
    out: dict[int, str] = {}
    for i, value in enumerate(ids):
        if value in seen:
            out[i] = value
        seen.add(value)
    return out


def catalog_problems(shape: CatalogShape) -> list[tuple[KeyPath, str]]:
    """Every cross-reference or consistency problem of a catalog, with its key path."""
    problems: list[tuple[KeyPath, str]] = []
    for i, pid in _duplicates([p.id for p in shape.products]).items():
        problems.append((("products", i, "id"), f"duplicate product id {pid!r}"))
    for i, pid in _duplicates([p.id for p in shape.prices]).items():
        problems.append((("prices", i, "id"), f"duplicate price id {pid!r}"))
    for i, cid in _duplicates([c.id for c in shape.coupons]).items():
        problems.append((("coupons", i, "id"), f"duplicate coupon id {cid!r}"))
    for i, tid in _duplicates([t.id for t in shape.tax_rates]).items():
        problems.append((("tax_rates", i, "id"), f"duplicate tax rate id {tid!r}"))
    countries = [(i, t.country.upper()) for i, t in enumerate(shape.tax_rates) if t.country]
    for j, country in _duplicates([c for _, c in countries]).items():
        problems.append(
            (("tax_rates", countries[j][0], "country"), f"a second tax rate for country {country}")
        )
    rate_ids = {t.id for t in shape.tax_rates}
    for i, rid in enumerate(shape.default_tax_rates):
        if rid not in rate_ids:
            problems.append((("default_tax_rates", i), f"unknown tax rate {rid!r}"))
    for i, rid in _duplicates(shape.default_tax_rates).items():
        problems.append((("default_tax_rates", i), f"tax rate {rid!r} listed twice"))
    products = {p.id for p in shape.products}
    for i, price in enumerate(shape.prices):
        at: KeyPath = ("prices", i)
        if price.product not in products:
            problems.append(((*at, "product"), f"unknown product {price.product!r}"))
        if price.billing_scheme == "tiered" and price.tiers_mode is None:
            problems.append(
                ((*at, "tiers_mode"), "a tiered price needs tiers_mode graduated|volume")
            )
        if price.billing_scheme == "per_unit" and price.tiers_mode is not None:
            problems.append(((*at, "tiers_mode"), "tiers_mode needs billing_scheme: tiered"))
        if price.transform_quantity is not None and price.billing_scheme == "tiered":
            problems.append(
                ((*at, "transform_quantity"), "transform_quantity works with per_unit prices only")
            )
        _check_amounts(at, price, price.billing_scheme, problems)
        for j, rid in enumerate(price.tax_rates):
            if rid not in rate_ids:
                problems.append(((*at, "tax_rates", j), f"unknown tax rate {rid!r}"))
        for j, rid in _duplicates(price.tax_rates).items():
            problems.append(((*at, "tax_rates", j), f"tax rate {rid!r} listed twice"))
        for cur, option in price.currency_options.items():
            if cur == price.currency:
                continue
            _check_amounts((*at, "currency_options", cur), option, price.billing_scheme, problems)
        rec = price.recurring
        if rec is None:
            problems.append(((*at, "recurring"), "a subscription price needs recurring"))
        elif rec.usage_type == "metered" and not rec.meter:
            problems.append(((*at, "recurring", "meter"), "a metered price must name its meter"))
        elif rec.usage_type == "licensed" and rec.meter:
            problems.append(
                ((*at, "recurring", "meter"), "only usage_type: metered prices have a meter")
            )
    for i, coupon in enumerate(shape.coupons):
        at = ("coupons", i)
        if (coupon.percent_off is None) == (coupon.amount_off is None):
            problems.append((at, "a coupon needs exactly one of percent_off or amount_off"))
        if coupon.percent_off is not None and not (0 < coupon.percent_off <= 100):
            problems.append(((*at, "percent_off"), "percent_off must be above 0 and at most 100"))
        if coupon.amount_off is not None and coupon.currency is None:
            problems.append(((*at, "currency"), "an amount_off coupon needs its currency"))
        if coupon.duration == "repeating" and coupon.duration_in_months is None:
            problems.append(
                ((*at, "duration_in_months"), "a repeating coupon needs duration_in_months")
            )
        if coupon.duration != "repeating" and coupon.duration_in_months is not None:
            problems.append(
                ((*at, "duration_in_months"), "duration_in_months needs duration: repeating")
            )
        if coupon.applies_to is not None:
            for j, product in enumerate(coupon.applies_to.products):
                if product not in products:
                    problems.append(
                        ((*at, "applies_to", "products", j), f"unknown product {product!r}")
                    )
    return problems


class Catalog(CatalogShape):
    """A validated catalog with lookups for the pricing engine."""

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        problems = catalog_problems(self)
        if problems:
            raise ValueError("; ".join(f"{format_key(k)}: {m}" for k, m in problems))
        return self

    def price(self, price_id: str) -> Price:
        """The price with this id, or a PricingError naming it."""
        for p in self.prices:
            if p.id == price_id:
                return p
        raise PricingError(f"price {price_id!r} is not in catalog {self.catalog!r}")

    def display_names(self) -> dict[str, str]:
        """Price id -> the name people use: its nickname, else its product's name."""
        products = {p.id: p.name for p in self.products}
        return {p.id: p.nickname or products.get(p.product, p.id) for p in self.prices}

    def product(self, product_id: str) -> Product:
        """The product with this id."""
        for p in self.products:
            if p.id == product_id:
                return p
        raise PricingError(f"product {product_id!r} is not in catalog {self.catalog!r}")

    def coupon(self, coupon_id: str) -> Coupon:
        """The coupon with this id, or a PricingError naming it."""
        for c in self.coupons:
            if c.id == coupon_id:
                return c
        raise PricingError(f"coupon {coupon_id!r} is not in catalog {self.catalog!r}")

    def coupon_amount_off(self, coupon_id: str, currency: str) -> int | None:
        """A coupon's amount_off in ``currency`` (None for a percent coupon or no option)."""
        coupon = self.coupon(coupon_id)
        if coupon.amount_off is None:
            return None
        cur = currency.lower()
        if coupon.currency == cur:
            return coupon.amount_off
        option = coupon.currency_options.get(cur)
        return None if option is None else option.amount_off

    def price_terms(self, price_id: str, currency: str) -> PriceTerms:
        """The price's amounts in ``currency`` through currency_options, or a PricingError."""
        price = self.price(price_id)
        cur = currency.lower()
        if cur == price.currency:
            unit = _unit(price.unit_amount, price.unit_amount_decimal)
            tiers = price.tiers or []
            tax_behavior = price.tax_behavior
        elif cur in price.currency_options:
            option = price.currency_options[cur]
            unit = _unit(option.unit_amount, option.unit_amount_decimal)
            tiers = option.tiers or []
            tax_behavior = option.tax_behavior or price.tax_behavior
        else:
            raise PricingError(
                f"price {price_id!r} has no amount in {cur} (add currency_options.{cur})"
            )
        rec = price.recurring or Recurring(interval="month")
        tq = price.transform_quantity
        return PriceTerms(
            price_id=price.id,
            product=price.product,
            currency=cur,
            nickname=price.nickname or self.product(price.product).name,
            billing_scheme=price.billing_scheme,
            unit_amount=unit,
            tiers_mode=price.tiers_mode,
            tiers=_tier_terms(tiers),
            divide_by=1 if tq is None else tq.divide_by,
            round_up=tq is not None and tq.round == "up",
            usage_type=rec.usage_type,
            meter=rec.meter,
            interval=rec.interval,
            interval_count=rec.interval_count,
            tax_behavior=tax_behavior,
            tax_rates=tuple(price.tax_rates),
        )

    def tax_rate_for(self, country: str) -> TaxRate | None:
        """The tax rate for a customer's country, or None (no tax)."""
        code = str(country).strip().upper()
        for rate in self.tax_rates:
            if rate.country is not None and rate.country.upper() == code:
                return rate
        return None


def load_catalog(path: Path | str) -> Catalog:
    """Read and validate a catalog YAML; every error names file, line and key."""
    doc = load_yaml(path, CatalogError)
    shape = validate(doc, CatalogShape, CatalogError)
    problems = catalog_problems(shape)
    if problems:
        raise CatalogError(problems_message(doc, problems))
    return Catalog.model_validate(shape.model_dump())
