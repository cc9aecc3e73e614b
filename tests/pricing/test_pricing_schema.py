"""The pricing engine's frames meet their declared contracts (shadowbill.pricing.schema)."""

from __future__ import annotations

import pandera.errors
import pytest
from demo_companies import demo_company

from shadowbill.demo.run import examples_dir
from shadowbill.pricing.catalog import load_catalog
from shadowbill.pricing.engine import PricedInvoices as Priced
from shadowbill.pricing.engine import price
from shadowbill.pricing.schema import PricedInvoices, PricedLines
from shadowbill.snapshot.instants import billed_through
from shadowbill.snapshot.io import read_snapshot

pytestmark = pytest.mark.slow  # extracts a demo company


@pytest.fixture(scope="module", params=[True, False], ids=["text", "lean"])
def priced(request: pytest.FixtureRequest) -> Priced:
    snapshot = read_snapshot(demo_company(300, 8, 11).snapshot)
    catalog = load_catalog(examples_dir() / "legacy_catalog.yaml")
    return price(snapshot, catalog, end=billed_through(snapshot), text=request.param)


def test_the_engine_meets_its_contracts_at_its_exit(priced: Priced) -> None:
    assert len(priced.invoices) > 100 and len(priced.lines) > len(priced.invoices)
    PricedInvoices.validate(priced.invoices, lazy=True)
    PricedLines.validate(priced.lines, lazy=True)
    assert set(priced.lines["invoice_key"]) <= set(priced.invoices["invoice_key"])


def test_an_invoice_that_does_not_add_up_breaks_its_contract(priced: Priced) -> None:
    broken = priced.invoices.copy()
    broken.loc[broken.index[0], "total"] += 1
    with pytest.raises(pandera.errors.SchemaError, match="total_is_subtotal"):
        PricedInvoices.validate(broken)
