"""External tax needs a locatable customer (https://docs.stripe.com/tax/customer-locations):
a postal code in the US, a postal code or province in Canada, elsewhere the country."""

from __future__ import annotations

import pandas as pd
from ops_fixtures import tiny_case

from shadowbill.migrate.plan import _held_for_tax_address
from shadowbill.pricing.catalog import TaxMode
from shadowbill.targets.tax_address import missing_tax_address


def test_which_customers_stripe_tax_cannot_locate() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["us_ok", "us_no", "ca_state", "ca_no", "gb", "none"],
            "country": ["US", "us", "CA", "CA", "GB", None],
            "address_postal_code": ["78701", " ", None, None, None, None],
            "address_state": [None, "TX", "QC", None, None, None],
        }
    )
    got = dict(zip(customers["customer_id"], missing_tax_address(customers), strict=True))
    assert got == {
        "us_ok": False,
        "us_no": True,
        "ca_state": False,
        "ca_no": True,
        "gb": False,
        "none": True,
    }


def test_plan_holds_out_only_under_external_tax() -> None:
    plan, rollout, _ = tiny_case()
    new = rollout.catalogs.new
    assert _held_for_tax_address(plan, new) == []  # computed tax: nothing held
    external = new.model_copy(update={"tax_mode": TaxMode.EXTERNAL})
    # C2 is in the US without a postal code: its subscription S2 waits for an address
    assert _held_for_tax_address(plan, external) == ["S2"]
