"""The demo's migration: one batch of each phase planned, gated, applied to a local
Stripe-compatible server, verified against its own invoice previews and cut over.

Stripe refuses a ``billing_cycle_anchor`` in the past, so this demo company's history is
generated to end about a month from today and every date of the example rollout is moved
by the same number of months (the cut-over of phases 1 and 2 lands next January at the
earliest): every legacy paid-through instant is then in the future.
The local server (localstripe behind shadowbill's adapter, on 127.0.0.1 only) bills in
USD and in whole minor units, so the demo batches take USD subscriptions and its copy of
the new catalog bills whole cents per message where the real one bills fractions.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import stripe

from shadowbill.demo.generate import generate
from shadowbill.demo.stripe_customers import customer_census, seed_existing_customers
from shadowbill.extract.run import extract
from shadowbill.ledger import Ledger

USD_ONLY = 'currency == "usd"'
DEMO_API_KEY = "sk_test_shadowbill_local_demo"  # the local server accepts any test key


@dataclass(frozen=True)
class MigrationCompany:
    """A demo company that can be migrated today: legacy database, snapshot, rules."""

    root: Path
    legacy_db: Path
    spec: Path
    snapshot: Path
    rollout: Path
    policy: Path


def shift_dates(text: str, months: int) -> str:
    """Every ISO date (YYYY-MM-DD) in ``text`` moved by ``months`` months, day clamped."""

    def moved(m: re.Match[str]) -> str:
        k = int(m[1]) * 12 + int(m[2]) - 1 + months
        year, month = k // 12, k % 12 + 1
        day = min(int(m[3]), calendar.monthrange(year, month)[1])
        return f"{year:04d}-{month:02d}-{day:02d}"

    return re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", moved, text)


def migration_company(
    root: Path,
    examples: Path,
    *,
    customers: int = 60,
    seed: int = 3,
    today: dt.date | None = None,
) -> MigrationCompany:
    """Generate and extract a demo company whose cut-overs lie ahead of ``today``."""
    today = today or dt.datetime.now(dt.UTC).date()
    root.mkdir(parents=True, exist_ok=True)
    first = today.year * 12 + today.month - 1 - 10  # history starts 10 months ago
    start = dt.date(first // 12, first % 12 + 1, 1)
    months = first - 2025 * 12  # the example rollout is written for a history from 2025-01
    rules = root / "examples"
    if rules.exists():
        shutil.rmtree(rules)
    shutil.copytree(examples, rules)
    rollout = rules / "rollout.yaml"
    rollout.write_text(shift_dates(rollout.read_text(), months))
    catalog = rules / "new_catalog.yaml"
    catalog.write_text(
        re.sub(r"unit_amount_decimal: '0\.\d+'", "unit_amount: 1", catalog.read_text())
    )
    made = generate(root / "legacy.db", customers=customers, months=10, seed=seed, start=start)
    extract(f"sqlite:///{made.db_path}", made.spec_path, root / "snapshot", progress=False)
    return MigrationCompany(
        root, made.db_path, made.spec_path, root / "snapshot", rollout, rules / "policy.yaml"
    )


def run_migration_demo(
    out: Path,
    examples: Path,
    *,
    customers: int = 150,
    seed: int = 7,
    batch_size: int = 5,
    echo: Callable[[str], object] = print,
    stripe_customers: bool = False,
    server_url: str | None = None,
) -> dict[str, Path]:
    """Migrate one batch of each phase against a local server; return where the files are.

    ``stripe_customers``: some demo customers already exist on the server with a card
    (:mod:`shadowbill.demo.stripe_customers`); the batches find and attach them.
    ``server_url``: a local server already running (default: one started for the run)."""
    from shadowbill.extract.spec import load_extract_spec
    from shadowbill.ledger import open_ledger
    from shadowbill.rehearsal.local_server import start_localstripe

    company = migration_company(out / "company", examples, customers=customers, seed=seed)
    spec = load_extract_spec(company.spec)
    statement = spec.cutover.stop_billing if spec.cutover else None
    ledger_url = f"sqlite:///{out / 'ledger.db'}"
    outputs: dict[str, Path] = {"migration ledger": out / "ledger.db"}
    with contextlib.ExitStack() as stack:
        if server_url is None:
            server_url = stack.enter_context(start_localstripe()).url
        ledger = stack.enter_context(open_ledger(ledger_url, actor="shadowbill-demo"))
        _migrate_phases(
            ledger, company, server_url, out, outputs, batch_size, echo, stripe_customers, statement
        )
    return outputs


def _migrate_phases(
    ledger: Ledger,
    company: MigrationCompany,
    server_url: str,
    out: Path,
    outputs: dict[str, Path],
    batch_size: int,
    echo: Callable[[str], object],
    stripe_customers: bool,
    statement: str | None,
) -> None:
    """One batch of each phase: plan, gate, apply, verify, cut over (see run_migration_demo)."""
    from shadowbill.migrate import (
        apply_batch,
        cutover_batch,
        gate_batch,
        plan_batch,
        verify_batch,
    )
    from shadowbill.targets.stripe_api import StripeTarget

    echo(f"    local Stripe-compatible server on {server_url} (loopback only)")
    client = stripe.StripeClient(DEMO_API_KEY, base_addresses={"api": server_url})
    existing: dict[str, str] = {}
    finder = None
    if stripe_customers:
        existing = seed_existing_customers(client, company.snapshot)
        finder = StripeTarget(DEMO_API_KEY, base_url=server_url)
        echo(
            f"    {len(existing)} demo customers already on Stripe with a card "
            "(found by metadata search, attached)"
        )
    for phase in (1, 2, 3):
        planned = plan_batch(
            ledger,
            rollout_path=company.rollout,
            phase=phase,
            snapshot_dir=company.snapshot,
            policy_path=company.policy,
            batch_size=batch_size,
            where=USD_ONLY,
            batches_dir=out / "batches",
            find_customers=("metadata",) if stripe_customers else (),
            target=finder,
        )
        batch = planned.batch_id
        gate = gate_batch(ledger, batch)
        forced = None if gate.passed else "demo: applied to a local server to show the flow"
        if forced:
            gate = gate_batch(ledger, batch, force_reason=forced)
        applied = apply_batch(
            ledger, batch, base_url=server_url, api_key=DEMO_API_KEY, force_reason=None
        )
        verified = verify_batch(ledger, batch, base_url=server_url, api_key=DEMO_API_KEY)
        handed = cutover_batch(
            ledger,
            batch,
            stop_statement=statement,
            source_url=f"sqlite:///{company.legacy_db}",
        )
        echo(
            f"    phase {phase}, batch {batch}: {len(planned.selection)} subscriptions; gate "
            + ("passed" if gate.passed else f"failed, forced ({', '.join(gate.failures)})")
            + f"; applied {len(applied.applied)}, verified {len(verified.verified)}"
            + (f" ({len(verified.unverified)} not)" if verified.unverified else "")
            + f", cut over {len(handed.cut_over)}"
        )
        if stripe_customers:
            echo(f"      {planned.stripe_lines()[0]}")
        outputs[f"batch {batch}"] = planned.out_dir
        outputs[f"cutover {batch}"] = handed.cutover_path
    if stripe_customers:
        targets = pd.concat([ledger.subscriptions(b) for b in ledger.batches()["batch_id"]])
        census = customer_census(client, existing, targets)
        echo(
            f"    Stripe customers: {census.customers} on the server, "
            f"{census.pre_existing} pre-existing, {census.attached_subscriptions} migrated "
            f"subscriptions on them, {len(census.doubled)} duplicated, "
            f"{len(census.misplaced)} misplaced"
        )
