"""The operations carry how the company really runs Stripe: existing customers attached,
payment terms per subscription or segment, the catalog's tax mode and billing mode.

Stripe pages: https://docs.stripe.com/billing/collection-method (collection_method,
days_until_due), https://docs.stripe.com/billing/taxes/collect-taxes (automatic_tax, the
customer address it needs), https://docs.stripe.com/billing/subscriptions/billing-mode.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import pytest
from ops_fixtures import tiny_case

from shadowbill.errors import OperationsError
from shadowbill.pricing.catalog import BillingMode, TaxMode
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.model import ATTACHED_CUSTOMER, attached_customer_id, recorded_kind
from shadowbill.targets.operations import build_operations
from shadowbill.translate.collection_terms import CollectionTerms
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Catalogs, Rollout


def _ops(plan: Plan, rollout: Rollout, legacy: Snapshot, **kw: Any) -> dict[str, Any]:
    return {o.key: o for o in build_operations(plan, rollout, legacy, batch_id="tiny", **kw)}


def _with_new_catalog(rollout: Rollout, **changes: Any) -> Rollout:
    new = rollout.catalogs.new.model_copy(update=changes)
    return dataclasses.replace(rollout, catalogs=Catalogs(rollout.catalogs.legacy, new))


def _with_terms(rollout: Rollout, terms: list[CollectionTerms]) -> Rollout:
    return dataclasses.replace(
        rollout, spec=rollout.spec.model_copy(update={"billing_terms": terms})
    )


def _with_columns(plan: Plan, table: str, **columns: pd.Series) -> Plan:
    frame = plan.snapshot[table].copy()
    for name, values in columns.items():
        frame[name] = values.to_numpy()
    tables = {**plan.snapshot.tables, table: frame}
    return dataclasses.replace(plan, snapshot=Snapshot(tables))


def test_a_linked_customer_is_attached_not_created_and_the_subscription_hangs_on_it() -> None:
    plan, rollout, legacy = tiny_case()
    ops = _ops(plan, rollout, legacy, links={"C1": "cus_existing1"})
    c1 = ops["customer:C1"]
    assert attached_customer_id(c1) == "cus_existing1"
    assert recorded_kind(c1) == ATTACHED_CUSTOMER
    # nothing a create would send: no name, email, metadata, tax_exempt, payment method
    assert set(c1.params) <= {"address"}
    assert ops["subscription:S1"].params["customer"] == "{{ref:customer:C1}}"
    # the other customers are still created
    assert attached_customer_id(ops["customer:C2"]) is None
    assert ops["customer:C2"].params["name"] == "Bo, Inc."


def test_collection_terms_come_from_the_rollout_per_segment_and_the_legacy_row_wins() -> None:
    plan, rollout, legacy = tiny_case()
    rollout = _with_terms(
        rollout,
        [
            CollectionTerms(segment="sales", collection_method="send_invoice", days_until_due=30),
            CollectionTerms(collection_method="charge_automatically"),
        ],
    )
    subs = plan.snapshot["subscriptions"]
    own = pd.Series([None, None, "send_invoice"], index=subs.index, dtype="string")
    days = pd.Series([None, None, 14], index=subs.index, dtype="Int64")
    plan = _with_columns(plan, "subscriptions", collection_method=own, days_until_due=days)
    ops = _ops(plan, rollout, legacy)
    s1 = ops["subscription:S1"].params  # C1 is a sales account
    assert (s1["collection_method"], s1["days_until_due"]) == ("send_invoice", 30)
    s3 = ops["subscription:S3"].params  # the legacy row's own terms
    assert (s3["collection_method"], s3["days_until_due"]) == ("send_invoice", 14)
    schedule = ops["subscription_schedule:S2"].params  # self-serve: the default entry
    assert all(p["collection_method"] == "charge_automatically" for p in schedule["phases"])
    assert all("invoice_settings" not in p for p in schedule["phases"])


def test_invoiced_schedule_phases_carry_their_days_under_invoice_settings() -> None:
    plan, rollout, legacy = tiny_case()
    rollout = _with_terms(
        rollout,
        [CollectionTerms(collection_method="send_invoice", days_until_due=45)],
    )
    schedule = _ops(plan, rollout, legacy)["subscription_schedule:S2"].params
    for phase in schedule["phases"]:
        assert phase["collection_method"] == "send_invoice"
        assert phase["invoice_settings"] == {"days_until_due": 45}


def test_send_invoice_without_payment_terms_is_refused_naming_the_subscription() -> None:
    plan, rollout, legacy = tiny_case()
    subs = plan.snapshot["subscriptions"]
    own = pd.Series(["send_invoice", None, None], index=subs.index, dtype="string")
    plan = _with_columns(plan, "subscriptions", collection_method=own)
    with pytest.raises(OperationsError, match=r"S1.*days_until_due"):
        _ops(plan, rollout, legacy)


def test_the_rollouts_terms_validate_send_invoice_needs_days() -> None:
    with pytest.raises(ValueError, match="days_until_due"):
        CollectionTerms(collection_method="send_invoice")
    with pytest.raises(ValueError, match="send_invoice only"):
        CollectionTerms(collection_method="charge_automatically", days_until_due=3)


def test_external_tax_enables_automatic_tax_sends_the_address_and_sets_no_manual_rate() -> None:
    plan, rollout, legacy = tiny_case()
    customers = plan.snapshot["customers"]
    plan = _with_columns(
        plan,
        "customers",
        address_line1=pd.Series(["1 Main St", "2 Elm St", None], index=customers.index),
        address_city=pd.Series(["London", "Austin", None], index=customers.index),
        address_postal_code=pd.Series(["EC1A 1BB", "78701", None], index=customers.index),
        address_state=pd.Series([None, "TX", None], index=customers.index),
    )
    rollout = _with_new_catalog(rollout, tax_mode=TaxMode.EXTERNAL)
    ops = _ops(plan, rollout, legacy)
    assert not [k for k in ops if k.startswith("tax_rate:")]
    for key in ("subscription:S1", "subscription:S3"):
        params = ops[key].params
        assert params["automatic_tax"] == {"enabled": True}
        assert "default_tax_rates" not in params
    for phase in ops["subscription_schedule:S2"].params["phases"]:
        assert phase["automatic_tax"] == {"enabled": True}
        assert "default_tax_rates" not in phase
    assert ops["customer:C2"].params["address"] == {
        "line1": "2 Elm St",
        "city": "Austin",
        "postal_code": "78701",
        "state": "TX",
        "country": "US",
    }


def test_no_tax_sets_neither_rates_nor_automatic_tax() -> None:
    plan, rollout, legacy = tiny_case()
    ops = _ops(plan, _with_new_catalog(rollout, tax_mode=TaxMode.NONE), legacy)
    assert not [k for k in ops if k.startswith("tax_rate:")]
    s1 = ops["subscription:S1"].params
    assert "default_tax_rates" not in s1 and "automatic_tax" not in s1


def test_billing_mode_is_explicit_and_the_catalogs() -> None:
    plan, rollout, legacy = tiny_case()
    ops = _ops(plan, _with_new_catalog(rollout, billing_mode=BillingMode.CLASSIC), legacy)
    assert ops["subscription:S1"].params["billing_mode"] == {"type": "classic"}
    assert ops["subscription_schedule:S2"].params["billing_mode"] == {"type": "classic"}
    default = _ops(plan, rollout, legacy)
    assert default["subscription:S1"].params["billing_mode"] == {"type": "flexible"}
