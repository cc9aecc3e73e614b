"""Apply through an unreliable network: 429s, 5xx, timeouts and dropped connections.

The fault proxy (its own process, loopback only) injects one fault into about one in six
of the requests, including the dangerous ones: the target acts and the answer is lost
(``drop_after``, ``500_after``). The batch must still end with every subscription and
customer created exactly once, and the ledger naming exactly what the target has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from migrate_cases import (
    USD,
    DemoEnv,
    customer_counts,
    demo_env,
    subscription_counts,
    target_subscriptions,
)

from shadowbill.ledger import Ledger, open_ledger
from shadowbill.migrate import apply_batch, plan_batch, rollback_batch
from shadowbill.rehearsal.local_server import LocalServer, start_fault_proxy, start_localstripe

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

KEY = "sk_test_faultsTESTKEY0123456789"
RATES = {
    "429": 0.03,
    "500": 0.02,
    "503": 0.02,
    "delay": 0.02,
    "drop_before": 0.02,
    "drop_after": 0.04,
    "500_after": 0.03,
}


@pytest.fixture
def servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    """localstripe and a fault proxy in front of it."""
    with (
        start_localstripe() as upstream,
        start_fault_proxy(upstream.url, seed=12, rates=RATES, delay=1.5) as proxy,
    ):
        yield upstream, proxy


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """A fresh ledger; the API key in the environment."""
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def test_faults_never_duplicate_and_the_ledger_matches_the_target(
    servers: tuple[LocalServer, LocalServer], ledger: Ledger, tmp_path: Path
) -> None:
    upstream, proxy = servers
    env: DemoEnv = demo_env(60)
    planned = plan_batch(
        ledger,
        rollout_path=env.rollout,
        phase=2,
        snapshot_dir=env.snapshot,
        batch_size=12,
        where=USD,
        batches_dir=tmp_path / "batches",
        rank_by_risk=False,
    )
    ids = set(planned.selection["subscription_id"])
    customers = set(planned.selection["customer_id"])
    result = None
    for _attempt in range(3):  # a subscription whose retries ran out is applied by a rerun
        result = apply_batch(
            ledger,
            planned.batch_id,
            base_url=proxy.url,
            rate_limit=200,
            concurrency=8,
            timeout=1.0,
            force_reason="fault rehearsal",
        )
        if result.ok:
            break
    assert result is not None and result.ok, result.failed
    faults = proxy.get_json("/__faults")
    injected = faults["injected"]
    assert sum(injected.values()) >= 10, faults
    assert injected["drop_after"] + injected["500_after"] >= 2, faults
    assert result.report is not None and result.report.retries > 0

    subs = subscription_counts(upstream.url)
    assert {s: subs[s] for s in ids} == dict.fromkeys(ids, 1)
    assert sum(subs.values()) == len(ids)
    people = customer_counts(upstream.url)
    assert {c: people[c] for c in customers} == dict.fromkeys(customers, 1)
    on_target = {
        s["metadata"]["legacy_subscription_id"]: s["id"] for s in target_subscriptions(upstream.url)
    }
    recorded = ledger.subscriptions(planned.batch_id)
    assert dict(
        zip(recorded["subscription_id"], recorded["target_subscription_id"], strict=True)
    ) == (on_target)
    assert set(recorded["state"]) == {"applied"}

    # the rollback goes through the same faults and still removes everything it created
    rolled = rollback_batch(ledger, planned.batch_id, base_url=proxy.url, timeout=1.0)
    assert sorted(rolled.rolled_back) == sorted(ids)
    assert sum(subscription_counts(upstream.url).values()) == 0
    assert not set(customer_counts(upstream.url)) & customers
