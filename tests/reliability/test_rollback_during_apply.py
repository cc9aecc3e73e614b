"""A forced rollback while an apply is running is refused (the apply holds its lease); once
the apply ends, rollback removes everything: no live orphan, no second subscription."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from migrate_cases import USD, DemoEnv, demo_env, subscription_counts
from reliability_run import run, start

from shadowbill.ledger import open_ledger
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe

pytestmark = pytest.mark.slow
TRIALS = 2


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company."""
    return demo_env(60)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh local Stripe-compatible server."""
    with start_localstripe() as srv:
        yield srv


def test_forced_rollback_during_apply_is_refused_and_leaves_no_orphan(
    env: DemoEnv, server: LocalServer, tmp_path: Path
) -> None:
    ledger_path = tmp_path / "ledger.db"
    url = f"sqlite:///{ledger_path}"
    target = ["--base-url", server.url, "--ledger", url]
    refused = 0
    for trial in range(TRIALS):
        plan = run(
            [
                "migrate",
                "plan",
                "--rollout",
                str(env.rollout),
                "--phase",
                "2",
                "--snapshot",
                str(env.snapshot),
                "--where",
                USD,
                "--no-rank",
                "--batch-size",
                "4",
                "--ledger",
                url,
            ],
            tmp_path,
        )
        assert plan.code == 0, plan.stderr
        batch = f"p2-{trial + 1:04d}"
        apply = start(
            [
                "migrate",
                "apply",
                "--batch",
                batch,
                "--rate-limit",
                "0.5",  # slow enough that the rollback below starts while it runs
                "--concurrency",
                "1",
                "--force",
                "--reason",
                "reliability trial",
                *target,
            ],
            tmp_path,
        )
        deadline = time.monotonic() + 60
        with open_ledger(url) as ledger:
            while ledger.lease(batch) is None and apply.poll() is None:
                assert time.monotonic() < deadline, "the apply never took its lease"
                time.sleep(0.1)
        assert apply.poll() is None, "the apply finished before the rollback could race it"
        forced = run(
            ["migrate", "rollback", "--batch", batch, "--force", "--reason", "stuck?", *target],
            tmp_path,
        )
        assert forced.code == 2 and "being applied right now" in forced.stderr, forced.stderr
        refused += 1
        _, err = apply.communicate(timeout=300)
        assert apply.returncode == 0, err
        done = run(["migrate", "rollback", "--batch", batch, *target], tmp_path)
        assert done.code == 0, done.stderr
        with open_ledger(url) as ledger:
            status = ledger.status()
            live = ledger.objects(batch, live_only=True)
            assert status.orphans.empty  # catalog objects are kept on purpose
            assert set(live["kind"]) <= {"product", "price", "meter", "tax_rate"}
    assert sum(subscription_counts(server.url).values()) == 0  # every one removed
    print(f"forced rollback during apply: {TRIALS} trials, {refused} refused, 0 orphans left")
