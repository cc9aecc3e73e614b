"""Every number a catalog holds is bounded (10^12), and the error names file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowbill.errors import CatalogError
from shadowbill.pricing.catalog import MAX_CATALOG_NUMBER, load_catalog

HEAD = "catalog: c\ncurrency: usd\nproducts: [{id: p, name: P}]\nprices:\n"


def _price(body: str) -> str:
    return HEAD + "  - id: a\n    product: p\n    currency: usd\n" + body


@pytest.mark.parametrize(
    ("body", "key", "line"),
    [
        ("    unit_amount: 100000000000000000\n", "prices[0].unit_amount", 8),
        ("    unit_amount: 1000000000000000\n", "prices[0].unit_amount", 8),
        ('    unit_amount_decimal: "1e15"\n', "prices[0].unit_amount_decimal", 8),
        ("    unit_amount_decimal: 0.0000000000001\n", "prices[0].unit_amount_decimal", 8),
        (
            "    billing_scheme: tiered\n    tiers_mode: volume\n    tiers:\n"
            "      - {up_to: 10000000000000000, unit_amount: 1}\n      - {up_to: inf, unit_amount: 1}\n",
            "prices[0].tiers[0].up_to",
            11,
        ),
        (
            "    unit_amount: 1\n    transform_quantity: {divide_by: 99999999999999999, round: up}\n",
            "prices[0].transform_quantity.divide_by",
            9,
        ),
    ],
    ids=["1e17", "1e15", "decimal-1e15", "13-places", "tier-up-to", "divide-by"],
)
def test_an_out_of_bounds_number_names_file_line_and_key(
    tmp_path: Path, body: str, key: str, line: int
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(_price(body))
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert f"{path}:{line}: {key}:" in message and "\n" not in message


def test_the_bound_itself_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    body = f"    unit_amount: {MAX_CATALOG_NUMBER}\n    recurring: {{interval: month}}\n"
    path.write_text(_price(body))
    assert load_catalog(path).price("a").unit_amount == MAX_CATALOG_NUMBER
