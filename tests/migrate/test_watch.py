"""Shadow billing after the cut-over: a batch migrated to the local Stripe-compatible server,
read back from it, and its issued invoices held against the model (comparison D), with the
hand-over proven and the run recorded in the ledger.

The local server does not renew subscriptions by itself (Stripe's test clocks make time pass
in test mode; it has none), so the invoices Stripe would issue for the first period after the
cut-over are written into the snapshot read back from the server: the model's own invoices,
once as they are and once with a price planted higher on one subscription.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from migrate_cases import USD, DemoEnv, demo_env

from shadowbill.cli.app import main
from shadowbill.extract.run import extract
from shadowbill.extract.stripe_source import extract_stripe, stripe_client
from shadowbill.ledger import Ledger, open_ledger
from shadowbill.migrate import (
    apply_batch,
    cutover_batch,
    gate_batch,
    model_first_invoices,
    plan_batch,
    verify_batch,
)
from shadowbill.migrate.batch_inputs import batch_inputs
from shadowbill.migrate.handover import HANDOVER_COLUMNS
from shadowbill.rehearsal.local_server import start_localstripe
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import TABLES
from shadowbill.translate.rollout import load_rollout

pytestmark = [pytest.mark.server, pytest.mark.slow]

KEY = "sk_test_watchTESTKEY0123456789"
STOP = "UPDATE plans_active SET plan_state = 'CNCL' WHERE plan_ref IN :subscription_ids"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A phase-2 batch of 6 USD subscriptions planned, applied, verified and cut over."""
    env: DemoEnv = demo_env(60)
    root = tmp_path_factory.mktemp("watch")
    legacy = root / "legacy.db"
    legacy.write_bytes(env.legacy_db.read_bytes())
    mp = pytest.MonkeyPatch()
    mp.setenv("STRIPE_API_KEY", KEY)
    with start_localstripe() as server, open_ledger(f"sqlite:///{root / 'ledger.db'}") as ledger:
        plan = plan_batch(
            ledger,
            rollout_path=env.rollout,
            phase=2,
            snapshot_dir=env.snapshot,
            policy_path=env.policy,
            batch_size=6,
            where=USD,
            batches_dir=root / "batches",
        )
        gate_batch(ledger, plan.batch_id)
        assert apply_batch(ledger, plan.batch_id, base_url=server.url, rate_limit=200).ok
        assert verify_batch(ledger, plan.batch_id, base_url=server.url).ok
        cutover_batch(ledger, plan.batch_id, stop_statement=STOP, source_url=f"sqlite:///{legacy}")
        actual, stats = extract_stripe(root / "stripe", client=stripe_client(server.url), rate=1000)
        yield {
            "env": env,
            "root": root,
            "ledger": ledger,
            "batch": plan.batch_id,
            "actual": actual.out_dir,
            "stats": stats,
            "legacy_db": legacy,
        }
    mp.undo()


def _issue(migrated: dict[str, object], out: Path, bump: str | None = None) -> Path:
    """The read-back snapshot with the first post-cut-over invoices Stripe would issue."""
    ledger = migrated["ledger"]
    assert isinstance(ledger, Ledger)
    batch = str(migrated["batch"])
    inputs = batch_inputs(ledger, batch)
    subs = ledger.subscriptions(batch)
    inv, lines = model_first_invoices(
        read_snapshot(inputs.snapshot_dir),
        load_rollout(inputs.rollout_path),
        2,
        subs[["subscription_id", "first_target_period_start"]],
        inputs.as_of,
    )
    inv = inv.assign(status="paid", invoice_id="in_" + inv["invoice_id"].astype(str))
    lines = lines.assign(invoice_id="in_" + lines["invoice_id"].astype(str))
    if bump is not None:  # a price changed on the server for one subscription
        mine = inv.loc[inv["subscription_id"] == bump, "invoice_id"]
        first = lines.index[lines["invoice_id"].isin(mine) & (lines["kind"] == "recurring")][0]
        lines.loc[first, "amount"] = int(lines.loc[first, "amount"]) + 100 * int(
            lines.loc[first, "quantity"]
        )
        lines.loc[first, "unit_amount_decimal"] = None
        for col in ("subtotal", "total"):
            inv.loc[inv["subscription_id"] == bump, col] += 100 * int(lines.loc[first, "quantity"])
    snap = read_snapshot(Path(str(migrated["actual"])))
    folder = out / "canonical"
    folder.mkdir(parents=True)
    frames = dict(snap.tables, invoices=inv, invoice_lines=lines)
    for name, frame in frames.items():
        text = frame[TABLES[name].column_names].copy()
        for col in text.columns:
            if isinstance(text[col].dtype, pd.DatetimeTZDtype):
                text[col] = text[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        text.to_csv(folder / f"{name}.csv", index=False)
    extract(str(folder), None, out / "snap", progress=False)
    return out / "snap"


def test_reading_the_server_back_costs_a_few_requests(migrated: dict[str, object]) -> None:
    snap = read_snapshot(Path(str(migrated["actual"])))
    subs = set(snap["subscriptions"]["subscription_id"])
    ledger = migrated["ledger"]
    assert isinstance(ledger, Ledger)
    batch_subs = set(ledger.subscriptions(str(migrated["batch"]))["subscription_id"])
    assert batch_subs <= subs  # read back under their legacy ids
    stats = migrated["stats"]
    assert stats.total_requests <= 12  # type: ignore[attr-defined]


def test_issued_invoices_that_match_the_model_are_reported_as_matching(
    migrated: dict[str, object], tmp_path: Path
) -> None:
    actual = _issue(migrated, tmp_path)
    done = CliRunner().invoke(
        main,
        [
            "migrate",
            "watch",
            "--batch",
            str(migrated["batch"]),
            "--actual",
            str(actual),
            "--ledger",
            str(migrated["ledger"].url),  # type: ignore[attr-defined]
        ],
    )
    assert done.exit_code == 0, done.output
    assert "actual matches model (verified before, matched after 6 cycle(s)" in done.output
    ledger = migrated["ledger"]
    assert isinstance(ledger, Ledger)
    log = ledger.log(str(migrated["batch"]))
    watched = log[log["action"] == "watch"]
    assert len(watched) >= 1 and watched["detail"].iloc[0]["matched"] == 6


def test_a_price_changed_on_the_server_is_found_with_its_cause(
    migrated: dict[str, object], tmp_path: Path
) -> None:
    from shadowbill.migrate.watch import watch_batch

    ledger = migrated["ledger"]
    assert isinstance(ledger, Ledger)
    subs = ledger.subscriptions(str(migrated["batch"]))
    victim = str(subs["subscription_id"].iloc[0])
    actual = _issue(migrated, tmp_path, bump=victim)
    result = watch_batch(ledger, str(migrated["batch"]), actual_dir=actual)
    assert not result.ok and result.matched == 5 and result.handover_findings == 0
    found = pd.read_csv(result.out_dir / "findings.csv")
    assert set(found["subscription_id"]) == {victim}
    assert "price_change" in set(found["cause"])
    impact = pd.read_csv(result.out_dir / "impact.csv").set_index("subscription_id")
    assert impact.loc[victim, "seen_change"] - impact.loc[victim, "promised_change"] > 0


def test_hand_over_files_map_legacy_ids_to_stripe_ids(
    migrated: dict[str, object], tmp_path: Path
) -> None:
    done = CliRunner().invoke(
        main,
        [
            "migrate",
            "handover",
            "--batch",
            str(migrated["batch"]),
            "--actual",
            str(migrated["actual"]),
            "--out",
            str(tmp_path / "handover"),
            "--ledger",
            str(migrated["ledger"].url),  # type: ignore[attr-defined]
        ],
    )
    assert done.exit_code == 0, done.output
    frame = pd.read_parquet(tmp_path / "handover" / "handover.parquet")
    assert tuple(frame.columns) == HANDOVER_COLUMNS
    assert frame["stripe_subscription_id"].str.startswith(("sub_", "sub_sched_")).all()
    assert frame["stripe_customer_id"].str.startswith("cus_").all()
    assert frame["stripe_subscription_item_id"].notna().all()
    assert (frame["cutover_at"] == frame["legacy_paid_through"]).all()
    text = (tmp_path / "handover" / "handover.csv").read_text()
    assert text.splitlines()[0] == ",".join(HANDOVER_COLUMNS)
