"""Stripe as a source: a Stripe account (the local Stripe-compatible server) read back into a
canonical snapshot, with legacy ids, few requests, quarantine and resumption."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe
from click.testing import CliRunner

from shadowbill.cli.app import main
from shadowbill.errors import SourceError
from shadowbill.extract.stripe_source import extract_stripe, stripe_client
from shadowbill.rehearsal.local_server import LocalServer
from shadowbill.snapshot.io import read_snapshot

pytestmark = [pytest.mark.server, pytest.mark.slow]

KEY = "sk_test_sourceTESTKEY0000"


@pytest.fixture(scope="module")
def account(localstripe: LocalServer) -> Iterator[dict[str, Any]]:
    """120 migrated customers with a subscription each (one invoice each), plus one customer
    created outside shadowbill and one subscription whose status has no canonical meaning."""
    client = stripe.StripeClient(KEY, base_addresses={"api": localstripe.url})
    tag = uuid.uuid4().hex[:8]
    product = client.v1.products.create(params={"name": f"Seats {tag}"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "metadata": {"shadowbill_price_id": "seat_month"},
        }
    )
    legacy = []
    for i in range(120):
        cus = client.v1.customers.create(
            params={
                "name": f"Customer {tag} {i}",
                "address": {"country": "US"},
                "metadata": {"legacy_customer_id": f"{tag}-C{i}"},
            }
        )
        client.v1.subscriptions.create(
            params={
                "customer": cus.id,
                "items": [{"price": price.id, "quantity": 1 + i % 5}],
                "collection_method": "send_invoice",
                "days_until_due": 30,
                "metadata": {"legacy_subscription_id": f"{tag}-S{i}"},
            }
        )
        legacy.append(f"{tag}-C{i}")
    outside = client.v1.customers.create(params={"name": f"Walk-in {tag}"})
    yield {
        "client": client,
        "tag": tag,
        "legacy": legacy,
        "outside": outside.id,
        "url": localstripe.url,
    }


def test_an_account_reads_back_with_legacy_ids_in_few_requests(
    account: dict[str, Any], tmp_path: Path
) -> None:
    result, stats = extract_stripe(tmp_path / "snap", client=account["client"], rate=1000)
    snap = read_snapshot(result.out_dir)
    tag = account["tag"]
    customers = snap["customers"]
    mine = customers[customers["customer_id"].str.startswith(f"{tag}-")]
    assert len(mine) == 120
    subs = snap["subscriptions"]
    assert set(subs.loc[subs["customer_id"].isin(mine["customer_id"]), "subscription_id"]) == {
        f"{tag}-S{i}" for i in range(120)
    }
    items = snap["subscription_items"]
    assert set(items.loc[items["subscription_id"].str.startswith(f"{tag}-"), "price_id"]) == {
        "seat_month"
    }
    invoices = snap["invoices"]
    ours = invoices[invoices["subscription_id"].str.startswith(f"{tag}-")]
    assert len(ours) == 120
    # every invoice's total is its lines' sum (quantity x 1500 cents)
    lines = snap["invoice_lines"]
    per_invoice = lines.groupby("invoice_id")["amount"].sum()
    assert (ours.set_index("invoice_id")["total"] == per_invoice.reindex(ours["invoice_id"])).all()
    # the target: at most one request per 50 invoices, lines included, none per customer
    assert stats.requests["invoices"] <= max(1, stats.objects["invoices"] // 50 + 1)
    assert stats.requests["customers"] <= stats.objects["customers"] // 100 + 1
    assert stats.total_requests <= 20
    # the customer created outside shadowbill (no address, no subscription) keeps its Stripe
    # id and is quarantined with a reason, since the canonical model needs its country
    held = snap.quarantine[snap.quarantine["row"].str.contains(account["outside"], regex=False)]
    assert list(held["table"]) == ["customers"]
    assert "country" in held["detail"].iloc[0]
    tables = snap.manifest["tables"]
    assert isinstance(tables, dict)
    assert all(t["rows_in"] == t["rows_out"] + t["quarantined"] for t in tables.values())


class _FailingAfter:
    """A client whose list calls fail after ``n`` of them (a read cut off half-way)."""

    def __init__(self, client: stripe.StripeClient, n: int) -> None:
        self.v1 = _Proxy(client.v1, [n])


class _Proxy:
    def __init__(self, target: Any, budget: list[int]) -> None:
        self._target, self._budget = target, budget

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name == "list":

            def listing(*args: Any, **kwargs: Any) -> Any:
                if self._budget[0] <= 0:
                    raise stripe.APIConnectionError("connection reset (simulated)")
                self._budget[0] -= 1
                return value(*args, **kwargs)

            return listing
        return _Proxy(value, self._budget)


def test_an_interrupted_read_resumes_from_its_last_page(
    account: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "snap"
    with pytest.raises(SourceError, match="could not reach Stripe"):
        extract_stripe(out, client=_FailingAfter(account["client"], 5), rate=1000)
    assert (tmp_path / "snap.stripe-read" / "cursor.json").exists()
    assert not (out / "manifest.json").exists()
    _, resumed = extract_stripe(out, client=account["client"], rate=1000)
    # the five kinds read before the cut are not read again
    assert set(resumed.requests) == {"customers", "subscriptions", "invoices"}
    full_dir = tmp_path / "again"
    _, _ = extract_stripe(full_dir, client=account["client"], rate=1000)
    a, b = read_snapshot(out), read_snapshot(full_dir)
    for table in ("customers", "subscriptions", "invoices", "invoice_lines"):
        assert len(a[table]) == len(b[table]), table


def test_customers_filter_and_the_command_line(
    account: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = tmp_path / "customers.txt"
    wanted.write_text("customer_id\n" + "\n".join(account["legacy"][:7]) + "\n")
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    out = tmp_path / "snap"
    done = CliRunner().invoke(
        main,
        [
            "extract",
            "--source",
            f"stripe:{account['url']}",
            "--customers",
            str(wanted),
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 0, done.output
    assert KEY not in done.output
    snap = read_snapshot(out)
    assert sorted(snap["customers"]["customer_id"]) == sorted(account["legacy"][:7])
    assert len(snap["invoices"]) == 7
    assert snap.manifest["source"] == f"stripe:{account['url']}"


def test_a_missing_or_broken_key_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    with pytest.raises(SourceError, match="STRIPE_API_KEY"):
        stripe_client("http://127.0.0.1:9")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_abc\n")
    with pytest.raises(SourceError, match="newline"):
        stripe_client("http://127.0.0.1:9")
