"""Catalog YAML: the demo catalogs load; every mistake is named by file, line and key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from shadowbill.errors import CatalogError, PricingError
from shadowbill.money import Rounding
from shadowbill.pricing.catalog import Granularity, Proration, load_catalog

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_company"
NEW_PRICE_IDS = {
    "essential_month",
    "essential_year",
    "advanced_month",
    "advanced_year",
    "expert_month",
    "expert_year",
    "fin_resolution",
    "sms_tiered",
    "whatsapp_tiered",
    "copilot_month",
    "copilot_year",
    "proactive_month",
    "proactive_year",
    "workspaces_month",
    "email_blocks_month",
}

BASE = """\
catalog: t
currency: usd
products:
- id: seat
  name: Seats
prices:
- id: seat_month
  product: seat
  currency: usd
  unit_amount: 1000
  recurring:
    interval: month
"""


@pytest.fixture
def write(tmp_path: Path):
    """Write catalog text to a file and return its path."""

    def _write(text: str) -> Path:
        path = tmp_path / "catalog.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def test_legacy_catalog_keeps_the_legacy_engine_rules() -> None:
    cat = load_catalog(EXAMPLES / "legacy_catalog.yaml")
    assert cat.engine.proration is Proration.DAYS
    assert cat.engine.discount_rounding is Granularity.PER_INVOICE
    terms = cat.price_terms("sms_month", "EUR")
    assert terms.unit_amount == Decimal("0.7") and terms.meter == "sms_messages"


def test_new_catalog_has_the_rollout_price_ids_in_five_currencies() -> None:
    cat = load_catalog(EXAMPLES / "new_catalog.yaml")
    assert {p.id for p in cat.prices} == NEW_PRICE_IDS
    assert cat.engine.proration is Proration.SECONDS  # Stripe's defaults
    assert cat.engine.rounding is Rounding.HALF_UP
    assert cat.engine.tax_rounding is Granularity.PER_LINE
    for price_id in NEW_PRICE_IDS:
        for currency in ("usd", "eur", "gbp", "jpy", "kwd"):
            cat.price_terms(price_id, currency)
    sms = cat.price_terms("sms_tiered", "usd")
    assert sms.tiers_mode == "graduated" and any(t.flat > 0 for t in sms.tiers)
    assert any(t.unit < 1 and t.unit != t.unit.to_integral_value() for t in sms.tiers)
    assert cat.price_terms("workspaces_month", "gbp").tiers_mode == "volume"
    email = cat.price_terms("email_blocks_month", "jpy")
    assert (email.divide_by, email.round_up, email.meter) == (1000, True, "emails_sent")
    assert cat.price_terms("fin_resolution", "kwd").meter == "ai_resolutions"


def test_defaults_are_stripes(write) -> None:
    cat = load_catalog(write(BASE))
    assert cat.engine.proration is Proration.SECONDS
    assert cat.engine.rounding is Rounding.HALF_UP
    assert cat.engine.discount_rounding is Granularity.PER_LINE
    assert cat.engine.tax_rounding is Granularity.PER_LINE


def test_currency_options_resolve_and_a_missing_currency_is_named() -> None:
    cat = load_catalog(EXAMPLES / "legacy_catalog.yaml")
    assert cat.price_terms("starter_month", "JPY").unit_amount == 5900
    assert cat.price_terms("starter_month", "usd").unit_amount == 3900
    with pytest.raises(PricingError, match=r"'starter_month' has no amount in chf"):
        cat.price_terms("starter_month", "CHF")
    with pytest.raises(PricingError, match="'nope' is not in catalog"):
        cat.price("nope")


def test_tax_rate_by_country_and_coupon_amounts_per_currency() -> None:
    cat = load_catalog(EXAMPLES / "new_catalog.yaml")
    rate = cat.tax_rate_for("gb")
    assert rate is not None and rate.percentage == Decimal("20")
    assert cat.tax_rate_for("US") is None
    assert cat.coupon_amount_off("WELCOME", "JPY") == 7500
    assert cat.coupon_amount_off("LOYAL20", "usd") is None


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("edit", "needle", "key", "message"),
    [
        (("product: seat\n  currency", "product: sits\n  currency"), "product: sits",
         "prices[0].product", "unknown product 'sits'"),
        (("unit_amount: 1000", "unit_amount: 1000\n  unit_amount_decimal: '9.5'"),
         "unit_amount: 1000", "prices[0].unit_amount", "exactly one of unit_amount"),
        (("unit_amount: 1000", "unit_amont: 1000"), "unit_amont", "prices[0].unit_amont",
         "unknown key"),
        (("unit_amount: 1000", "unit_amount: ten"), "unit_amount: ten",
         "prices[0].unit_amount", "integer"),
        (("interval: month", "interval: fortnight"), "interval: fortnight",
         "prices[0].recurring.interval", "'day', 'week', 'month' or 'year'"),
        (("interval: month", "interval: month\n    usage_type: metered"), "recurring:",
         "prices[0].recurring.meter", "must name its meter"),  # no meter key: its block
        (("currency: usd\nproducts", "currency: usx\nproducts"), "currency: usx",
         "currency", "ISO 4217"),
    ],
)  # fmt: skip
def test_errors_name_file_line_and_key(
    write, edit: tuple[str, str], needle: str, key: str, message: str
) -> None:
    text = BASE.replace(*edit)
    path = write(text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    error = str(caught.value)
    assert f"{path}:{_line_of(text, needle)}: {key}:" in error
    assert message in error


TIERED = BASE.replace(
    "  unit_amount: 1000\n",
    "  billing_scheme: tiered\n  tiers_mode: graduated\n  tiers:\n"
    "  - up_to: 10\n    unit_amount: 500\n  - up_to: 5\n    unit_amount: 400\n"
    "  - up_to: 100\n    unit_amount: 300\n",
)


def test_tiers_must_ascend_and_end_with_inf(write) -> None:
    path = write(TIERED)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    error = str(caught.value)
    assert (
        f"{path}:{_line_of(TIERED, 'up_to: 5')}: prices[0].tiers[1].up_to: tiers must ascend"
        in error
    )
    assert (
        f"{path}:{_line_of(TIERED, 'up_to: 100')}: prices[0].tiers[2].up_to: the last tier must be up_to: inf"
        in error
    )


def test_duplicate_ids_and_coupon_rules_are_named(write) -> None:
    text = (
        BASE
        + BASE.split("prices:\n")[1]
        + "coupons:\n- id: X\n  percent_off: 150\n- id: Y\n  amount_off: 500\n"
        "  duration: repeating\n"
    )
    path = write(text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    error = str(caught.value)
    assert "prices[1].id: duplicate price id 'seat_month'" in error
    assert "coupons[0].percent_off: percent_off must be above 0 and at most 100" in error
    assert "coupons[1].currency: an amount_off coupon needs its currency" in error
    assert "coupons[1].duration_in_months: a repeating coupon needs duration_in_months" in error


def test_the_demo_catalogs_round_trip_through_yaml() -> None:
    for name in ("legacy_catalog.yaml", "new_catalog.yaml"):
        data = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
        assert load_catalog(EXAMPLES / name).catalog == data["catalog"]
