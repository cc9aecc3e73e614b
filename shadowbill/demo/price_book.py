"""The demo legacy engine's price book: the legacy catalog YAML as integer lookup tables.

The legacy engine is deliberately independent of ``shadowbill.mappings`` and the pricing
engine: it reads the same catalog file and bills by its own code, so that reconciling the
two proves the billing model rather than sharing a bug.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from shadowbill.errors import CatalogError
from shadowbill.money import Rounding, exponent

# The demo company bills in these currencies (index = the engine's currency code).
CURRENCIES: tuple[str, ...] = ("USD", "GBP", "EUR", "JPY", "KWD")
# Unit prices are held as integers of minor units scaled by 10**UNIT_SCALE ("0.75" -> 7500).
UNIT_SCALE = 4
# Percentages (tax rates, percent_off) are held scaled by 10**PCT_SCALE ("12.5" -> 1250).
PCT_SCALE = 2
# The rules this engine implements; a catalog asking for others is refused.
SUPPORTED_ENGINE = {
    "proration": "days",
    "discount_rounding": "per_invoice",
    "tax_rounding": "per_invoice",
}


def legacy_catalog_path() -> Path:
    """The demo company's legacy catalog shipped in ``shadowbill.examples``."""
    root = importlib.resources.files("shadowbill.examples")
    return Path(str(root / "demo_company" / "legacy_catalog.yaml"))


def extract_spec_path() -> Path:
    """The demo legacy database's extract spec shipped in ``shadowbill.examples``."""
    root = importlib.resources.files("shadowbill.examples")
    return Path(str(root / "demo_company" / "extract_spec.yaml"))


@dataclass(frozen=True)
class TaxRate:
    """One exclusive tax rate of the catalog, for one country."""

    tax_rate_id: str
    display_name: str
    percentage: str
    country: str
    inclusive: bool

    @property
    def scaled(self) -> int:
        """The percentage scaled by ``10**PCT_SCALE``."""
        return scaled_decimal(self.percentage, PCT_SCALE, f"tax rate {self.tax_rate_id}")


@dataclass(frozen=True)
class PriceBook:
    """Prices as parallel tuples plus a (price x currency) table of scaled unit amounts."""

    path: Path
    rounding: Rounding
    price_ids: tuple[str, ...]
    product_names: tuple[str, ...]
    intervals: tuple[str, ...]
    meters: tuple[str | None, ...]
    unit_scaled: npt.NDArray[np.int64]  # shape (prices, CURRENCIES), minor units * 10**UNIT_SCALE
    tax_rates: tuple[TaxRate, ...]

    def index(self, price_id: str) -> int:
        """The row of ``price_id`` in the lookup tables."""
        try:
            return self.price_ids.index(price_id)
        except ValueError:
            raise CatalogError(f"{self.path}: prices: no price {price_id!r}") from None

    def is_metered(self, price_idx: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Element-wise: is the price metered (billed from usage)?"""
        metered = np.array([m is not None for m in self.meters], dtype=bool)
        return metered[price_idx]


def scaled_decimal(text: object, scale: int, what: str) -> int:
    """A decimal number as an exact integer scaled by ``10**scale``, or a CatalogError."""
    value = Decimal(str(text)).scaleb(scale)
    if value != value.to_integral_value():
        raise CatalogError(f"{what}: {text} has more than {scale} decimal places")
    return int(value)


def _unit_of(entry: dict[str, Any], where: str) -> int:
    if entry.get("unit_amount_decimal") is not None:
        return scaled_decimal(entry["unit_amount_decimal"], UNIT_SCALE, where)
    if entry.get("unit_amount") is not None:
        return int(entry["unit_amount"]) * 10**UNIT_SCALE
    raise CatalogError(f"{where}: no unit_amount or unit_amount_decimal (tiers are not supported)")


def load_price_book(path: Path | None = None) -> PriceBook:
    """Read the legacy catalog into lookup tables; refuse engine rules this engine lacks."""
    path = path or legacy_catalog_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read the legacy catalog: {exc}") from None
    engine = data.get("engine") or {}
    for rule, wanted in SUPPORTED_ENGINE.items():
        if engine.get(rule) != wanted:
            raise CatalogError(
                f"{path}: engine.{rule} is {engine.get(rule)!r}; the demo legacy engine bills {wanted}"
            )
    products = {p["id"]: p["name"] for p in data.get("products", [])}
    ids, names, intervals, meters, units = [], [], [], [], []
    for i, price in enumerate(data.get("prices", [])):  # per catalog entry
        where = f"{path}: prices[{i}] ({price.get('id')})"
        options = {str(k).upper(): v for k, v in (price.get("currency_options") or {}).items()}
        options[str(price["currency"]).upper()] = price
        missing = [c for c in CURRENCIES if c not in options]
        if missing:
            raise CatalogError(f"{where}: no currency_options for {', '.join(missing)}")
        ids.append(str(price["id"]))
        names.append(str(products.get(price["product"], price["product"])))
        recurring = price.get("recurring") or {}
        intervals.append(str(recurring.get("interval", "month")))
        meters.append(recurring.get("meter") if recurring.get("usage_type") == "metered" else None)
        units.append([_unit_of(options[c], f"{where} {c}") for c in CURRENCIES])
    rates = tuple(
        TaxRate(
            str(t["id"]),
            str(t.get("display_name", t["id"])),
            str(t["percentage"]),
            str(t["country"]).upper(),
            bool(t.get("inclusive", False)),
        )
        for t in data.get("tax_rates", [])
    )
    return PriceBook(
        path=path,
        rounding=Rounding(engine.get("rounding", "half_up")),
        price_ids=tuple(ids),
        product_names=tuple(names),
        intervals=tuple(intervals),
        meters=tuple(meters),
        unit_scaled=np.array(units, dtype=np.int64),
        tax_rates=rates,
    )


def major_text(scaled: int, currency: str, scale: int = UNIT_SCALE) -> str:
    """A scaled minor-unit amount as major-unit text with at least the currency's decimals."""
    exp = exponent(currency)
    value = Decimal(scaled).scaleb(-scale - exp)
    text = f"{value:f}"
    head, _, tail = text.partition(".")
    tail = tail.rstrip("0").ljust(exp, "0")
    return f"{head}.{tail}" if tail else head
