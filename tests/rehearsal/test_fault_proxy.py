"""The fault proxy, and StripeTarget's retries through it: every object exactly once."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import requests
import stripe
from stripe_cases import TEST_KEY, RecordingHTTPClient

from shadowbill.rehearsal.fault_proxy import FAULTS, parse_rates
from shadowbill.rehearsal.local_server import LocalServer
from shadowbill.targets.model import Operation
from shadowbill.targets.retry import RetryPolicy
from shadowbill.targets.stripe_api import StripeTarget

pytestmark = [pytest.mark.server, pytest.mark.slow]
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def test_parse_rates_validates() -> None:
    assert parse_rates("429=0.1, drop_after=0.05") == {"429": 0.1, "drop_after": 0.05}
    assert parse_rates("") == {}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_rates("teapot=0.1")
    with pytest.raises(ValueError, match="probability"):
        parse_rates("500=1.5")
    with pytest.raises(ValueError, match="more than 1"):
        parse_rates("500=0.6,503=0.6")


def _statuses(proxy: LocalServer, n: int) -> list[int | str]:
    out: list[int | str] = []
    with requests.Session() as session:
        for _ in range(n):
            try:
                out.append(
                    session.get(proxy.url + "/v1/balance", headers=AUTH, timeout=5).status_code
                )
            except requests.ConnectionError:
                out.append("dropped")
    return out


def test_faults_are_seeded_counted_and_reported(
    fault_proxy: Callable[..., LocalServer],
) -> None:
    rates = {"429": 0.15, "500": 0.1, "503": 0.1, "drop_before": 0.1, "drop_after": 0.1}
    first = fault_proxy(seed=11, rates=rates)
    second = fault_proxy(seed=11, rates=rates)
    a, b = _statuses(first, 60), _statuses(second, 60)
    assert a == b  # same seed, same faults in the same order
    counts = first.get_json("/__faults")
    assert counts["requests"] == 60
    injected = counts["injected"]
    assert injected["429"] == a.count(429)
    assert injected["500"] == a.count(500) and injected["503"] == a.count(503)
    assert injected["drop_before"] + injected["drop_after"] == a.count("dropped")
    assert a.count(200) == 60 - sum(injected.values())
    assert counts["forwarded"] == a.count(200) + injected["drop_after"]
    assert all(v > 0 for k, v in injected.items() if k in rates)
    assert set(injected) == set(FAULTS)


def test_drop_after_forwarding_then_retry_returns_the_same_object(
    fault_proxy: Callable[..., LocalServer], localstripe: LocalServer, uid: str
) -> None:
    proxy = fault_proxy(seed=1, rates={"drop_after": 1.0})
    headers = {**AUTH, "Idempotency-Key": f"k-{uid}"}
    body = {"name": "Dropped", "metadata[shadowbill_key]": f"customer:{uid}"}
    with pytest.raises(requests.ConnectionError):
        requests.post(proxy.url + "/v1/customers", data=body, headers=headers, timeout=5)
    # The upstream created it although the client never saw the answer ...
    query = {"query": f"metadata['shadowbill_key']:'customer:{uid}'"}
    found = requests.get(
        localstripe.url + "/v1/customers/search", params=query, headers=AUTH, timeout=5
    ).json()
    assert len(found["data"]) == 1
    # ... and the retry with the same Idempotency-Key gets that object, not a second one.
    again = requests.post(localstripe.url + "/v1/customers", data=body, headers=headers, timeout=5)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == found["data"][0]["id"]
    assert proxy.get_json("/__faults")["injected"]["drop_after"] == 1


def test_every_operation_created_exactly_once_despite_faults(
    fault_proxy: Callable[..., LocalServer],
    localstripe: LocalServer,
    make_ops: Callable[..., list[Operation]],
    uid: str,
) -> None:
    rates = {
        "429": 0.04,
        "500": 0.02,
        "503": 0.02,
        "delay": 0.02,
        "drop_before": 0.03,
        "drop_after": 0.04,
        "500_after": 0.03,
    }  # 20% of requests fail
    proxy = fault_proxy(seed=20260601, rates=rates, delay=1.2)
    ops = make_ops(uid, 12, schedule_every=4)
    target = StripeTarget(
        TEST_KEY,
        base_url=proxy.url,
        rate_limit=500.0,
        concurrency=8,
        http_client=RecordingHTTPClient(timeout=0.8),
        retry_policy=RetryPolicy(
            max_retries=12, initial_delay=0.02, max_delay=0.3, rng=random.Random(3)
        ),
    )
    report = target.apply(ops)
    assert report.ok, (report.failed, report.skipped)
    assert report.retries > 0
    assert set(report.ids) == {op.key for op in ops}

    faults = proxy.get_json("/__faults")["injected"]
    assert sum(faults.values()) > 0
    assert faults["drop_after"] + faults["500_after"] > 0  # the dangerous kind happened

    # Exactly one object per operation on the server (counted without the proxy).
    raw = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe.url})
    for op in ops:
        if op.kind == "customer":
            key = op.params["metadata"]["shadowbill_key"]
            hits = raw.v1.customers.search(params={"query": f"metadata['shadowbill_key']:'{key}'"})
            assert len(hits.data) == 1, op.key
        if op.kind in ("subscription", "subscription_schedule"):
            customer = report.ids[f"customer:{op.customer_id}"]
            subs = raw.v1.subscriptions.list(params={"customer": customer, "status": "all"})
            assert len(subs.data) == 1, op.key
    prices = raw.v1.prices.list(params={"lookup_keys": [f"advanced_month_{uid}"]})
    assert len(prices.data) == 1

    # A second run through the faults creates nothing more.
    again = target.apply(ops)
    assert again.ok and not again.created
