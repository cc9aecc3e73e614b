"""shadowbill catalog import --from killbill: Kill Bill catalog XML to a legacy catalog YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shadowbill.cli.app import main
from shadowbill.errors import CatalogError
from shadowbill.pricing.catalog import load_catalog
from shadowbill.pricing.killbill_catalog import convert

PRESET = Path(__file__).resolve().parents[2] / "examples" / "killbill"


def test_phases_become_prices_named_as_kill_bill_stores_them() -> None:
    data = convert((PRESET / "catalog.xml").read_text())
    prices = {p["id"]: p for p in data["prices"]}
    assert set(prices) == {
        "standard-monthly-trial",
        "standard-monthly-evergreen",
        "premium-monthly-evergreen",
        "premium-monthly-api",
        "analytics-monthly-evergreen",
    }
    standard = prices["standard-monthly-evergreen"]
    assert standard["unit_amount"] == 5000
    assert standard["currency_options"]["jpy"] == {"unit_amount": 5000}  # JPY has no decimals
    assert prices["standard-monthly-trial"]["unit_amount"] == 0
    api = prices["premium-monthly-api"]
    assert api["recurring"]["meter"] == "api-calls"
    assert api["tiers"] == [
        {"up_to": 1000, "unit_amount_decimal": "5"},
        {"up_to": "inf", "unit_amount_decimal": "2"},
    ]
    assert api["currency_options"]["eur"]["tiers"][1]["unit_amount_decimal"] == "1.5"


def test_shipped_legacy_catalog_is_the_import_of_the_shipped_xml(tmp_path: Path) -> None:
    out = tmp_path / "legacy.yaml"
    args = ["catalog", "import", "--from", "killbill", str(PRESET / "catalog.xml")]
    result = CliRunner().invoke(
        main, [*args, "--out", str(out), "--tax", "DE=19", "--tax", "JP=10"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == (PRESET / "legacy_catalog.yaml").read_text()
    assert len(load_catalog(out).prices) == 5


def test_xml_entities_are_refused() -> None:
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;">]><catalog><catalogName>&b;</catalogName></catalog>'
    )
    with pytest.raises(CatalogError, match="not a readable Kill Bill catalog"):
        convert(hostile)


def test_a_bad_tax_option_is_one_line_exit_two(tmp_path: Path) -> None:
    args = ["catalog", "import", "--from", "killbill", str(PRESET / "catalog.xml")]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "x.yaml"), "--tax", "DE"])
    assert result.exit_code == 2
    assert "expected COUNTRY=PERCENT" in result.output


def test_not_a_catalog_names_the_root(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="root element is <plans>"):
        convert("<plans/>")
