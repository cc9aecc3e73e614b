"""plan links existing Stripe customers once and says what the batch does on Stripe; apply
attaches them (never duplicates); rollback keeps them.

Against the local Stripe-compatible server with the official SDK. Search API:
https://docs.stripe.com/search; payment methods:
https://docs.stripe.com/api/customers/object#customer_object-invoice_settings-default_payment_method.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from migrate_cases import USD, DemoEnv, client, demo_env

from shadowbill.ledger import Ledger, open_ledger
from shadowbill.migrate import apply_batch, gate_batch, plan_batch, rollback_batch
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe
from shadowbill.snapshot.io import scan_columns
from shadowbill.targets.api_version import STRIPE_API_VERSION
from shadowbill.targets.stripe_api import StripeTarget

pytestmark = [pytest.mark.slow, pytest.mark.server]
KEY = "sk_test_planlinksTESTKEY012345"


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    return demo_env(60)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with start_localstripe() as srv:
        yield srv


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def _existing(server: LocalServer, legacy_id: str, *, card: bool) -> dict[str, Any]:
    c = client(server.url, KEY)
    cus = c.v1.customers.create(
        params={"name": legacy_id, "metadata": {"legacy_customer_id": legacy_id}}
    )
    if card:
        pm = c.v1.payment_methods.create(
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
        c.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
        cus = c.v1.customers.update(
            cus.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    return dict(cus.to_dict())


def _customer_count(server: LocalServer) -> int:
    c = client(server.url, KEY)
    return sum(1 for _ in c.v1.customers.list(params={"limit": 100}).auto_paging_iter())


def test_plan_links_reports_and_apply_attaches_without_duplicates(
    env: DemoEnv, server: LocalServer, ledger: Ledger, tmp_path: Path
) -> None:
    customers = scan_columns(env.snapshot, "customers", ["customer_id", "currency"])
    usd = sorted(
        customers.loc[customers["currency"].astype(str) == "USD", "customer_id"].astype(str)
    )
    # three of them already pay through Stripe: one named in a mapping file (with a card),
    # two found by the metadata search (one with a card, one without)
    mapped = _existing(server, "not-the-legacy-id", card=True)
    searched = [_existing(server, cid, card=i == 0) for i, cid in enumerate(usd[1:3])]
    mapping = tmp_path / "map.csv"
    mapping.write_text(f"legacy_id,stripe_id\n{usd[0]},{mapped['id']}\n")
    wanted = usd[:3]
    planned = plan_batch(
        ledger,
        rollout_path=env.rollout,
        phase=2,
        snapshot_dir=env.snapshot,
        policy_path=env.policy,
        batch_size=50,
        where=USD + " and customer_id in " + json.dumps(wanted + usd[3:5]),
        batches_dir=tmp_path / "batches",
        rank_by_risk=False,
        customer_map=mapping,
        find_customers=("metadata",),
        target=StripeTarget(KEY, base_url=server.url),
    )
    batch_customers = set(planned.selection["customer_id"].astype(str))
    linked = {usd[0]: mapped["id"], usd[1]: searched[0]["id"], usd[2]: searched[1]["id"]}
    linked = {k: v for k, v in linked.items() if k in batch_customers}
    assert linked, "the demo's phase 2 should hold some of these customers"
    info = json.loads((planned.out_dir / "plan.json").read_text())["stripe"]
    assert info["api_version"] == STRIPE_API_VERSION
    assert info["customers_attached"] == len(linked)
    assert info["customers_created"] == len(batch_customers) - len(linked)
    no_card = {usd[2]} & batch_customers
    # created customers have no payment method; so has the attached one without a card
    assert info["without_payment_method"] == info["customers_created"] + len(no_card)
    assert set(no_card) <= set(info["without_payment_method_ids"])
    assert info["collection_methods"] == {"charge_automatically": len(planned.selection)}
    assert info["tax_mode"] == "computed" and info["billing_mode"] == "flexible"
    assert any("attached to existing Stripe customers" in line for line in planned.describe())

    before = _customer_count(server)
    gate_batch(ledger, planned.batch_id, force_reason="test")
    applied = apply_batch(ledger, planned.batch_id, base_url=server.url)
    assert applied.ok, applied.failed
    assert _customer_count(server) == before + info["customers_created"]
    subs = ledger.subscriptions(planned.batch_id)
    for row in subs.itertuples():
        if row.customer_id in linked:
            assert row.target_customer_id == linked[row.customer_id]
    rollback_batch(ledger, planned.batch_id, base_url=server.url)
    c = client(server.url, KEY)
    for cus_id in linked.values():  # pre-existing: kept, card untouched
        assert not c.v1.customers.retrieve(cus_id).to_dict().get("deleted")
    assert _customer_count(server) == before
