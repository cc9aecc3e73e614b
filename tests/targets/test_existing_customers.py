"""Customers who already pay through Stripe: found, attached, never duplicated or changed.

Against the local Stripe-compatible server with the official SDK (never skipped in CI).
Search: https://docs.stripe.com/search (query language, 20 requests/s:
https://docs.stripe.com/rate-limits); payment methods:
https://docs.stripe.com/api/customers/object#customer_object-invoice_settings-default_payment_method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import stripe
from stripe_cases import TEST_KEY, anchor_in, catalog_ops

from shadowbill.errors import InputError, TargetError
from shadowbill.rehearsal.local_server import LocalServer
from shadowbill.targets.customer_links import link_customers, read_customer_map
from shadowbill.targets.model import ATTACHED_CUSTOMER, Operation, ref
from shadowbill.targets.stripe_api import StripeTarget

pytestmark = pytest.mark.server


@pytest.fixture
def client(localstripe: LocalServer) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe.url})


def existing_customer(
    client: stripe.StripeClient, legacy_id: str, email: str, *, card: bool
) -> dict[str, Any]:
    """A customer the company already has on Stripe (its own metadata), maybe with a card."""
    cus = client.v1.customers.create(
        params={"name": legacy_id, "email": email, "metadata": {"legacy_customer_id": legacy_id}}
    )
    if card:
        pm = client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2030,
                    "cvc": "123",
                },
            }
        )
        client.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
        cus = client.v1.customers.update(
            cus.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    return dict(cus.to_dict())


def _customers(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype("string")


def test_links_are_found_in_order_snapshot_mapping_metadata_email(
    client: stripe.StripeClient, target: StripeTarget, uid: str
) -> None:
    a = existing_customer(client, f"A{uid}", f"a{uid}@example.com", card=True)
    b = existing_customer(client, f"B{uid}", f"b{uid}@example.com", card=False)
    c = existing_customer(client, f"other{uid}", f"c{uid}@example.com", card=True)
    d = existing_customer(client, f"D{uid}", f"d{uid}@example.com", card=True)
    customers = _customers(
        [
            # the snapshot column wins over a metadata hit (D's legacy id)
            {"customer_id": f"D{uid}", "email": None, "stripe_customer_id": a["id"]},
            {"customer_id": f"B{uid}", "email": None, "stripe_customer_id": None},
            {"customer_id": f"C{uid}", "email": f"c{uid}@example.com", "stripe_customer_id": None},
            {"customer_id": f"M{uid}", "email": None, "stripe_customer_id": None},
            {"customer_id": f"N{uid}", "email": f"n{uid}@example.com", "stripe_customer_id": None},
        ]
    )
    links = link_customers(
        customers,
        mapping={f"M{uid}": d["id"], f"D{uid}": b["id"]},
        finder=target,
        search=("metadata", "email"),
    )
    got = {
        r.customer_id: (r.stripe_customer_id, r.linked_by, r.has_payment_method)
        for r in links.itertuples()
    }
    assert got[f"D{uid}"] == (a["id"], "snapshot", True)
    assert got[f"M{uid}"] == (d["id"], "mapping", True)
    assert got[f"B{uid}"] == (b["id"], "metadata", False)
    assert got[f"C{uid}"] == (c["id"], "email", True)
    missing, how, _ = got[f"N{uid}"]
    assert missing is pd.NA and how == ""  # not on Stripe: the batch creates it


def test_two_customers_with_one_email_are_never_guessed(
    client: stripe.StripeClient, target: StripeTarget, uid: str
) -> None:
    existing_customer(client, f"x{uid}", f"dup{uid}@example.com", card=False)
    existing_customer(client, f"y{uid}", f"dup{uid}@example.com", card=False)
    customers = _customers([{"customer_id": f"L{uid}", "email": f"dup{uid}@example.com"}])
    with pytest.raises(TargetError, match="2 Stripe customers match by email"):
        link_customers(customers, finder=target, search=("email",))


def test_a_linked_customer_missing_on_stripe_stops_the_plan(target: StripeTarget) -> None:
    customers = _customers([{"customer_id": "L1", "stripe_customer_id": "cus_doesnotexist"}])
    with pytest.raises(TargetError, match=r"cus_doesnotexist.*does not exist"):
        link_customers(customers, finder=target)


def test_the_mapping_file_names_its_row_when_wrong(tmp_path: Path) -> None:
    good = tmp_path / "map.csv"
    good.write_text("legacy_id,stripe_id\nL1,cus_1\n\nL2, cus_2\n")
    assert read_customer_map(good) == {"L1": "cus_1", "L2": "cus_2"}
    bad = tmp_path / "bad.csv"
    bad.write_text("legacy_id,stripe_id\nL1,cus_1\nL2,acct_2\n")
    with pytest.raises(InputError, match=r"bad.csv row 3: 'acct_2' is not a Stripe customer id"):
        read_customer_map(bad)
    header = tmp_path / "header.csv"
    header.write_text("id,stripe\n")
    with pytest.raises(InputError, match="row 1: the header must be exactly"):
        read_customer_map(header)


def _count_customers(client: stripe.StripeClient) -> int:
    return sum(1 for _ in client.v1.customers.list(params={"limit": 100}).auto_paging_iter())


def test_apply_attaches_keeps_the_payment_method_and_rollback_keeps_the_customer(
    client: stripe.StripeClient, target: StripeTarget, uid: str
) -> None:
    cus = existing_customer(client, f"P{uid}", f"p{uid}@example.com", card=True)
    pm = cus["invoice_settings"]["default_payment_method"]
    batch = f"b_{uid}"
    ops = [
        *catalog_ops(batch, uid),
        Operation(
            batch,
            f"customer:P{uid}",
            "customer",
            {"address": {"country": "US", "postal_code": "78701"}},
            {"attach": cus["id"]},
            customer_id=f"P{uid}",
        ),
        Operation(
            batch,
            f"subscription:S{uid}",
            "subscription",
            {
                "customer": ref(f"customer:P{uid}"),
                "items": [{"price": ref(f"price:advanced_month_{uid}"), "quantity": 2}],
                "billing_cycle_anchor": anchor_in(5),
                "proration_behavior": "none",
                "collection_method": "charge_automatically",
                "billing_mode": {"type": "flexible"},
                "metadata": {"shadowbill_key": f"subscription:S{uid}"},
            },
            {"metadata.shadowbill_key": f"subscription:S{uid}"},
            subscription_id=f"S{uid}",
            customer_id=f"P{uid}",
        ),
    ]
    before = _count_customers(client)
    report = target.apply(ops)
    assert report.ok, report.failed
    assert report.reused[f"customer:P{uid}"] == cus["id"]
    assert _count_customers(client) == before  # nothing duplicated
    sub = client.v1.subscriptions.retrieve(report.ids[f"subscription:S{uid}"])
    assert sub.customer == cus["id"]
    after = client.v1.customers.retrieve(cus["id"])
    assert after.invoice_settings.default_payment_method == pm  # untouched
    assert after.address is not None and after.address.postal_code == "78701"  # it had none
    removed = target.cancel_and_remove([(ATTACHED_CUSTOMER, cus["id"]), ("subscription", sub.id)])
    assert removed.ok and (ATTACHED_CUSTOMER, cus["id"]) in removed.kept
    assert not client.v1.customers.retrieve(cus["id"]).to_dict().get("deleted")


def test_an_address_the_customer_has_is_never_overwritten(
    client: stripe.StripeClient, target: StripeTarget, uid: str
) -> None:
    cus = existing_customer(client, f"Q{uid}", f"q{uid}@example.com", card=False)
    client.v1.customers.update(cus["id"], params={"address": {"country": "GB", "city": "Leeds"}})
    op = Operation(
        f"b_{uid}",
        f"customer:Q{uid}",
        "customer",
        {"address": {"country": "US"}},
        {"attach": cus["id"]},
    )
    assert target.apply([op]).ok
    assert client.v1.customers.retrieve(cus["id"]).address.country == "GB"


def test_attaching_a_customer_that_does_not_exist_fails_and_creates_nothing(
    client: stripe.StripeClient, target: StripeTarget, uid: str
) -> None:
    before = _count_customers(client)
    op = Operation(f"b_{uid}", "customer:Z", "customer", {}, {"attach": "cus_gone" + uid})
    report = target.apply([op])
    assert report.failed["customer:Z"].code == "attach_missing"
    assert _count_customers(client) == before
