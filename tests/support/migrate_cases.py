"""Shared parts for the migration runner tests: a small demo company that can be migrated today.

The demo company's history is generated so that its phase 2 cut-over lies about two months
ahead of the wall clock (every date of the example rollout is moved by the same number of
months as the history), so that every legacy paid-through instant, and with it every
``billing_cycle_anchor``, is in the future as Stripe requires. The copy of the new
catalog bills whole minor units per message in its graduated tiers: the local
Stripe-compatible server cannot bill a fraction of a cent. Its server bills in USD only,
so the tests choose USD subscriptions with ``--where``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe
from demo_companies import demo_company

from shadowbill.demo.migration import shift_dates
from shadowbill.demo.run import examples_dir

USD: str = 'currency == "usd"'
_CACHE: dict[tuple[int, int], DemoEnv] = {}
_ROOT: list[Path] = []


@dataclass(frozen=True)
class DemoEnv:
    """A demo company ready to migrate: legacy database, snapshot, rollout and policy."""

    root: Path
    legacy_db: Path
    spec: Path
    snapshot: Path
    rollout: Path
    policy: Path

    def fresh_copy(self, where: Path) -> DemoEnv:
        """A private copy (legacy database and snapshot) a test may change."""
        where.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.legacy_db, where / "legacy.db")
        shutil.copy2(self.spec, where / "legacy.extract.yaml")
        shutil.copytree(self.snapshot, where / "snapshot")
        return DemoEnv(
            where,
            where / "legacy.db",
            where / "legacy.extract.yaml",
            where / "snapshot",
            self.rollout,
            self.policy,
        )


def demo_env(customers: int = 60, seed: int = 3) -> DemoEnv:
    """The demo company (cached per process): history of 6 months ending ~1 month from now."""
    key = (customers, seed)
    if key in _CACHE:
        return _CACHE[key]
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="shadowbill-migrate-tests-")))
    root = _ROOT[0] / f"demo-{customers}-{seed}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    today = dt.datetime.now(dt.UTC).date()
    first = today.year * 12 + today.month - 1 - 10  # history starts 10 months ago
    start = dt.date(first // 12, first % 12 + 1, 1)
    months = first - 2025 * 12  # the example rollout is written for a history from 2025-01
    examples = root / "examples"
    shutil.copytree(examples_dir(), examples)
    rollout = examples / "rollout.yaml"
    rollout.write_text(shift_dates(rollout.read_text(), months))
    catalog = examples / "new_catalog.yaml"
    catalog.write_text(
        re.sub(r"unit_amount_decimal: '0\.\d+'", "unit_amount: 1", catalog.read_text())
    )
    company = demo_company(customers, 6, seed, start)
    made = company.made
    env = DemoEnv(
        root, made.db_path, made.spec_path, company.snapshot, rollout, examples / "policy.yaml"
    )
    _CACHE[key] = env
    return env


def cleanup() -> None:
    """Remove the cached demo companies."""
    for root in _ROOT:
        shutil.rmtree(root, ignore_errors=True)
    _ROOT.clear()
    _CACHE.clear()


atexit.register(cleanup)


def client(base_url: str, key: str = "sk_test_migrateTESTKEY0000") -> stripe.StripeClient:
    """A Stripe client on the local server (the server accepts any test key)."""
    return stripe.StripeClient(key, base_addresses={"api": base_url}, max_network_retries=2)


def _all(page_fn: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params = {"limit": 100, **params}
    while True:
        page = page_fn(params=params).to_dict()
        out += page["data"]
        if not page.get("has_more") or not page["data"]:
            return out
        params = {**params, "starting_after": page["data"][-1]["id"]}


def target_subscriptions(base_url: str) -> list[dict[str, Any]]:
    """Every subscription on the server that is not cancelled."""
    c = client(base_url)
    subs = _all(c.v1.subscriptions.list, {"status": "all"})
    return [s for s in subs if s.get("status") not in ("canceled", "incomplete_expired")]


def subscription_counts(base_url: str) -> Counter[str]:
    """How many live subscriptions the server has per legacy subscription id."""
    return Counter(
        str((s.get("metadata") or {}).get("legacy_subscription_id"))
        for s in target_subscriptions(base_url)
    )


def customer_counts(base_url: str) -> Counter[str]:
    """How many (not deleted) customers the server has per legacy customer id."""
    c = client(base_url)
    return Counter(
        str((cu.get("metadata") or {}).get("legacy_customer_id"))
        for cu in _all(c.v1.customers.list, {})
        if not cu.get("deleted")
    )
