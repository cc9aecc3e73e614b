"""Crash and resume: ``migrate apply`` killed with SIGKILL at random points, then run to the end.

A batch of 30 subscriptions is applied by ``python -m shadowbill.cli.migrate apply`` at a
low rate limit, so that the process is in the middle of its requests when it is killed:
each trial waits until the process announces its first request, sleeps a seeded random
0.05 to 1.5 s and kills it (no chance to clean up: the ledger write or the request in
flight is simply cut). After all trials one more apply runs to completion. Every
subscription and customer must exist exactly once on the target, and the ledger must
name exactly the objects the target has.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from migrate_cases import (
    USD,
    client,
    customer_counts,
    demo_env,
    subscription_counts,
    target_subscriptions,
)

from shadowbill.ledger import open_ledger
from shadowbill.migrate import plan_batch
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

KEY = "sk_test_crashTESTKEY0123456789"
TRIALS = 20
SEED = 20260101


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh local Stripe-compatible server."""
    with start_localstripe() as srv:
        yield srv


def _apply(ledger: str, batch_id: str, base_url: str, rate: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "shadowbill.cli.migrate", "apply", "--batch", batch_id),
            *("--ledger", ledger, "--base-url", base_url, "--rate-limit", rate),
            *("--concurrency", "4", "--force", "--reason", "crash rehearsal"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STRIPE_API_KEY": KEY},
    )


def _wait_for_start(proc: subprocess.Popen[str], timeout: float = 60.0) -> bool:
    """True once the process printed that it starts sending (False: it ended first)."""
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("applying batch"):
                seen.set()
                break

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen.wait(0.02):
            return True
        if proc.poll() is not None:
            return seen.is_set()
    raise AssertionError("apply did not start within a minute")


@pytest.mark.slow
def test_apply_killed_at_random_points_resumes_without_duplicates(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    env = demo_env(100)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as ledger:
        planned = plan_batch(
            ledger,
            rollout_path=env.rollout,
            phase=2,
            snapshot_dir=env.snapshot,
            batch_size=30,
            where=USD,
            batches_dir=tmp_path / "batches",
            rank_by_risk=False,
        )
    batch_id = planned.batch_id
    ids = set(planned.selection["subscription_id"])
    customers = set(planned.selection["customer_id"])
    assert len(ids) == 30

    rng = random.Random(SEED)
    recorded: list[int] = []
    killed_mid_flight = 0
    for _trial in range(TRIALS):
        proc = _apply(url, batch_id, server.url, "5")
        started = _wait_for_start(proc)
        if started:
            time.sleep(rng.uniform(0.05, 1.5))
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if proc.stderr is not None:
            err = proc.stderr.read()
            assert "Traceback" not in err, err[-3000:]
            proc.stderr.close()
        with open_ledger(url) as ledger:
            recorded.append(len(ledger.objects(batch_id, live_only=True)))
        if alive and started and recorded[-1] < sum(planned.operations.values()):
            killed_mid_flight += 1

    print("objects recorded after each trial:", recorded)
    final = _apply(url, batch_id, server.url, "100")
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-3000:]
    assert f"batch {batch_id} is applied: 30 subscriptions applied, 0 failed" in out
    # trials were killed while objects were being created, not only before or after
    assert killed_mid_flight >= 5, recorded
    assert len(set(recorded)) >= 5, recorded

    counts = subscription_counts(server.url)
    assert {s: counts[s] for s in ids} == dict.fromkeys(ids, 1)
    assert sum(counts.values()) == 30
    people = customer_counts(server.url)
    assert {c: people[c] for c in customers} == dict.fromkeys(customers, 1)
    assert sum(people.values()) == 30

    with open_ledger(url) as ledger:
        subs = ledger.subscriptions(batch_id)
        objects = ledger.objects(batch_id, live_only=True)
        assert set(subs["state"]) == {"applied"}
        assert ledger.batch(batch_id).status == "applied"
    on_target = {
        s["metadata"]["legacy_subscription_id"]: s["id"] for s in target_subscriptions(server.url)
    }
    assert dict(zip(subs["subscription_id"], subs["target_subscription_id"], strict=True)) == (
        on_target
    )
    target_customers = {
        c["metadata"]["legacy_customer_id"]: c["id"]
        for c in client(server.url).v1.customers.list(params={"limit": 100}).to_dict()["data"]
    }
    mine = objects[objects["kind"] == "customer"]
    assert dict(zip(mine["customer_id"], mine["target_id"], strict=True)) == target_customers
    assert len(objects) == sum(planned.operations.values())
