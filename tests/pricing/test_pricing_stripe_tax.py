"""Stripe's manual tax-rate arithmetic, held against the engine.

Sources:
- docs.stripe.com/api/invoices/object: ``subtotal`` is before invoice-level discounts and
  exclusive tax (inclusive tax is inside it); ``tax`` is the sum of every tax amount;
  ``total`` is after discounts and tax.
- docs.stripe.com/billing/taxes/tax-rates: inclusive tax is part of the price, exclusive
  tax is added on top; up to 10 rates per line, the inclusive part first and the
  exclusive part on what remains; line rates replace the invoice's default rates; a
  tax-exempt (or reverse-charge) customer on an inclusive rate pays the price less the
  backed-out tax, on an exclusive rate the price.
"""

from __future__ import annotations

from typing import Any

import pytest
from pricing_builders import catalog, item, seat_price, snapshot, subscription

from shadowbill.pricing.catalog import Catalog
from shadowbill.pricing.engine import PricedInvoices, price

MONTH_END = "2025-02-01T00:00:00Z"


def _rate(rid: str, percentage: str, *, inclusive: bool, country: str | None = None) -> dict:
    return {
        "id": rid,
        "display_name": rid.upper(),
        "percentage": percentage,
        "inclusive": inclusive,
        **({"country": country} if country else {}),
    }


def _price_one_month(
    cat: Catalog, items: list[dict[str, Any]], *, country: str = "GB", exempt: bool = False
) -> PricedInvoices:
    snap = snapshot(
        subscriptions=[subscription(country=country)],
        customers=[
            {
                "customer_id": "c_s1",
                "name": "c",
                "country": country,
                "currency": "USD",
                "segment": "sales",
                "created_at": "2025-01-01T00:00:00Z",
                "tax_exempt": exempt,
            }
        ],
        subscription_items=items,
    )
    return price(snap, cat, end=MONTH_END)


def _totals(result: PricedInvoices) -> tuple[int, int, int, int]:
    inv = result.invoices.iloc[0]
    return int(inv["subtotal"]), int(inv["discount"]), int(inv["tax"]), int(inv["total"])


def test_inclusive_tax_is_counted_in_the_invoice_tax() -> None:
    # invoices/object: tax = "the amount of tax on this invoice ... the sum of all the tax
    # amounts"; inclusive tax is inside the subtotal, so the total stays the price.
    cat = catalog(
        [seat_price("p", 12000)], tax_rates=[_rate("vat", "20", inclusive=True, country="GB")]
    )
    result = _price_one_month(cat, [item("i", "p")])
    assert _totals(result) == (12000, 0, 2000, 12000)
    tax_line = result.lines[result.lines["kind"] == "tax"].iloc[0]
    assert int(tax_line["amount"]) == 0  # adds nothing to the total
    assert tax_line["explain"] == "includes 20.00 VAT (20%) in 120.00"


def test_exclusive_tax_is_added_on_top() -> None:
    cat = catalog(
        [seat_price("p", 10000)], tax_rates=[_rate("vat", "20", inclusive=False, country="GB")]
    )
    assert _totals(_price_one_month(cat, [item("i", "p")])) == (10000, 0, 2000, 12000)


@pytest.mark.parametrize(("inclusive", "total"), [(True, 10000), (False, 12000)])
def test_tax_exempt_customer_pays_the_price_less_the_backed_out_inclusive_tax(
    inclusive: bool, total: int
) -> None:
    # tax-rates: an exempt customer pays no tax; an inclusive price of 120.00 at 20% holds
    # 20.00 of tax, so the customer pays 100.00; on an exclusive rate, the price.
    cat = catalog(
        [seat_price("p", 12000)], tax_rates=[_rate("vat", "20", inclusive=inclusive, country="GB")]
    )
    result = _price_one_month(cat, [item("i", "p")], exempt=True)
    assert _totals(result) == (12000, 0, 0, total)
    assert int(result.lines["amount"].sum()) == total


def test_inclusive_part_first_then_exclusive_on_what_remains() -> None:
    # tax-rates: several rates on one line; 120.00 with 20% inclusive VAT holds 20.00, the
    # 5% exclusive rate taxes the 100.00 that remains: 5.00 on top.
    prices = [seat_price("p", 12000, tax_rates=["vat", "levy"])]
    rates = [_rate("vat", "20", inclusive=True), _rate("levy", "5", inclusive=False)]
    result = _price_one_month(catalog(prices, tax_rates=rates), [item("i", "p")])
    assert _totals(result) == (12000, 0, 2500, 12500)
    taxes = result.lines[result.lines["kind"] == "tax"]
    assert taxes["line_id"].str.rsplit("/", n=1).str[-1].tolist() == ["vat", "levy"]
    assert taxes["amount"].tolist() == [0, 500]


def test_two_inclusive_rates_share_one_backed_out_base() -> None:
    # 115.00 holding 10% and 5% inclusive: 100.00 before tax, 10.00 and 5.00 of tax.
    prices = [seat_price("p", 11500, tax_rates=["gst", "pst"])]
    rates = [_rate("gst", "10", inclusive=True), _rate("pst", "5", inclusive=True)]
    result = _price_one_month(catalog(prices, tax_rates=rates), [item("i", "p")])
    assert _totals(result) == (11500, 0, 1500, 11500)


def test_line_rates_replace_the_default_rates() -> None:
    # tax-rates: rates set on a line replace the default tax rates for that line.
    prices = [
        seat_price("books", 10000, product="books", tax_rates=["reduced"]),
        seat_price("seats", 10000, product="seats"),
    ]
    rates = [_rate("standard", "20", inclusive=False), _rate("reduced", "5", inclusive=False)]
    cat = catalog(prices, tax_rates=rates, default_tax_rates=["standard"])
    result = _price_one_month(cat, [item("a", "books"), item("b", "seats")], country="US")
    assert _totals(result) == (20000, 0, 2500, 22500)


def test_country_rate_is_the_fallback_without_line_or_default_rates() -> None:
    rates = [_rate("vat", "20", inclusive=False, country="GB"), _rate("x", "7", inclusive=False)]
    cat = catalog([seat_price("p", 10000)], tax_rates=rates)
    assert _totals(_price_one_month(cat, [item("i", "p")]))[2] == 2000
    assert _totals(_price_one_month(cat, [item("i", "p")], country="US"))[2] == 0


@pytest.mark.parametrize("mode", ["none", "external"])
def test_catalogs_without_computed_tax_issue_no_tax_lines(mode: str) -> None:
    cat = catalog(
        [seat_price("p", 10000)],
        tax_rates=[_rate("vat", "20", inclusive=False, country="GB")],
        tax_mode=mode,
    )
    result = _price_one_month(cat, [item("i", "p")])
    assert _totals(result) == (10000, 0, 0, 10000)
    assert "tax" not in set(result.lines["kind"])


def test_unknown_or_too_many_tax_rates_are_catalog_errors() -> None:
    with pytest.raises(ValueError, match="unknown tax rate 'nope'"):
        catalog([seat_price("p", 100, tax_rates=["nope"])])
    many = [_rate(f"r{i}", "1", inclusive=False) for i in range(11)]
    with pytest.raises(ValueError, match="at most 10"):
        catalog([seat_price("p", 100)], tax_rates=many, default_tax_rates=[r["id"] for r in many])
