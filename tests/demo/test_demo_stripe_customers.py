"""`shadowbill demo --stripe-customers`: demo customers already on Stripe are attached, never
duplicated, and every migrated subscription of theirs hangs on them.

Search: https://docs.stripe.com/search; the customer's default payment method:
https://docs.stripe.com/api/customers/object#customer_object-invoice_settings-default_payment_method.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe

from shadowbill.demo.migration import DEMO_API_KEY, run_migration_demo
from shadowbill.demo.run import examples_dir
from shadowbill.ledger import open_ledger
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with start_localstripe() as running:
        yield running


def test_existing_customers_are_attached_never_duplicated(
    tmp_path: Path, server: LocalServer
) -> None:
    lines: list[str] = []
    run_migration_demo(
        tmp_path, examples_dir(), echo=lines.append, stripe_customers=True, server_url=server.url
    )
    client = stripe.StripeClient(DEMO_API_KEY, base_addresses={"api": server.url})
    on_server = [
        c.to_dict() for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()
    ]
    by_legacy: dict[str, list[dict]] = {}
    for c in on_server:
        by_legacy.setdefault(c["metadata"]["legacy_customer_id"], []).append(c)
    assert all(len(v) == 1 for v in by_legacy.values()), "a legacy customer was duplicated"
    pre_existing = {
        k: v[0] for k, v in by_legacy.items() if "shadowbill_key" not in v[0]["metadata"]
    }
    assert pre_existing
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        subs = [ledger.subscriptions(b) for b in ledger.batches()["batch_id"]]
    attached = 0
    for frame in subs:
        for row in frame.itertuples():
            assert row.state == "cut_over"
            if row.customer_id in pre_existing:
                attached += 1
                assert row.target_customer_id == pre_existing[row.customer_id]["id"]
                tid = str(row.target_subscription_id)
                if tid.startswith("sub_sched_"):
                    holder = client.v1.subscription_schedules.retrieve(tid).customer
                else:
                    holder = client.v1.subscriptions.retrieve(tid).customer
                assert holder == row.target_customer_id
    assert attached >= 1
    # the pre-existing customers keep their card as the default payment method
    for c in pre_existing.values():
        assert c["invoice_settings"]["default_payment_method"].startswith("pm_")
    assert any("0 duplicated, 0 misplaced" in line for line in lines)
