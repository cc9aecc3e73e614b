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
import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shadowbill.demo.generate import generate
from shadowbill.extract.run import extract

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
) -> dict[str, Path]:
    """Migrate one batch of each phase against a local server; return where the files are."""
    from shadowbill.extract.spec import load_extract_spec
    from shadowbill.ledger import open_ledger
    from shadowbill.migrate import (
        apply_batch,
        cutover_batch,
        gate_batch,
        plan_batch,
        verify_batch,
    )
    from shadowbill.rehearsal.local_server import start_localstripe

    company = migration_company(out / "company", examples, customers=customers, seed=seed)
    spec = load_extract_spec(company.spec)
    statement = spec.cutover.stop_billing if spec.cutover else None
    ledger_url = f"sqlite:///{out / 'ledger.db'}"
    outputs: dict[str, Path] = {"migration ledger": out / "ledger.db"}
    with start_localstripe() as server, open_ledger(ledger_url, actor="shadowbill-demo") as ledger:
        echo(f"    local Stripe-compatible server on {server.url} (loopback only)")
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
            )
            batch = planned.batch_id
            gate = gate_batch(ledger, batch)
            forced = None if gate.passed else "demo: applied to a local server to show the flow"
            if forced:
                gate = gate_batch(ledger, batch, force_reason=forced)
            applied = apply_batch(
                ledger, batch, base_url=server.url, api_key=DEMO_API_KEY, force_reason=None
            )
            verified = verify_batch(ledger, batch, base_url=server.url, api_key=DEMO_API_KEY)
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
            outputs[f"batch {batch}"] = planned.out_dir
            outputs[f"cutover {batch}"] = handed.cutover_path
    return outputs
