"""The migration runner end to end against the real local Stripe-compatible server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from migrate_cases import (
    USD,
    DemoEnv,
    client,
    demo_env,
    subscription_counts,
    target_subscriptions,
)

from shadowbill.extract.run import extract
from shadowbill.ledger import Ledger, open_ledger
from shadowbill.migrate import (
    CUTOVER_FILE,
    OPERATIONS_FILE,
    STRIPE_CSV_FILE,
    VERIFY_FILE,
    GateClosedError,
    InputsChangedError,
    MigrationError,
    apply_batch,
    cutover_batch,
    gate_batch,
    plan_batch,
    rollback_batch,
    stop_billing,
    verify_batch,
)
from shadowbill.migrate.batch_select import (
    SelectionError,
    apply_where,
    risk_order,
    whole_customers,
)
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe
from shadowbill.snapshot.fingerprints import (
    changed_customers,
    customer_fingerprints,
    shared_fingerprint,
)
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import Snapshot

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

KEY = "sk_test_runnerTESTKEY0123456789"
STOP = "UPDATE plans_active SET plan_state = 'CNCL' WHERE plan_ref IN :subscription_ids"


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company (60 customers; 24 USD subscriptions in phase 2)."""
    return demo_env(60)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh local Stripe-compatible server for one test."""
    with start_localstripe() as srv:
        yield srv


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """A fresh SQLite ledger; the API key in the environment."""
    monkeypatch.setenv("STRIPE_API_KEY", KEY)
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def _plan(ledger: Ledger, env: DemoEnv, tmp_path: Path, size: int = 8, **kw: object):
    return plan_batch(
        ledger,
        rollout_path=env.rollout,
        phase=2,
        snapshot_dir=env.snapshot,
        policy_path=env.policy,
        batch_size=size,
        where=kw.pop("where", USD),  # type: ignore[arg-type]
        batches_dir=tmp_path / "batches",
        rank_by_risk=bool(kw.pop("rank_by_risk", False)),
        **kw,  # type: ignore[arg-type]
    )


def _ledger_targets(ledger: Ledger, batch_id: str) -> dict[str, str]:
    subs = ledger.subscriptions(batch_id)
    live = subs[subs["state"].isin(["applied", "verified", "cut_over"])]
    return dict(zip(live["subscription_id"], live["target_subscription_id"], strict=True))


def test_plan_gate_apply_verify_cutover_then_more_batches_and_a_rollback(
    env: DemoEnv, server: LocalServer, ledger: Ledger, tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy.db"
    legacy.write_bytes(env.legacy_db.read_bytes())

    # plan: lowest risk first, whole customers, files for review, fingerprints recorded
    a = _plan(ledger, env, tmp_path, rank_by_risk=True)
    assert a.batch_id == "p2-0001" and len(a.selection) == 8
    assert set(a.selection["currency"]) == {"usd"}
    assert a.selection["risk"].tolist() == list(range(1, 9))
    unflagged = a.selection[a.selection["flags"] == 0]
    assert unflagged["change_pct"].is_monotonic_increasing
    for name in (OPERATIONS_FILE, STRIPE_CSV_FILE, "selection.csv", "plan.json"):
        assert (a.out_dir / name).stat().st_size > 0
    assert a.operations["subscription"] + a.operations.get("subscription_schedule", 0) == 8
    batch = ledger.batch(a.batch_id)
    assert batch.status == "planned"
    assert {"snapshot", "rollout", "new_catalog", "policy", "operations"} <= set(batch.fingerprints)
    planned = ledger.subscriptions(a.batch_id)
    assert planned["customer_fingerprint"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert (planned["paid_through"] == planned["first_target_period_start"]).all()

    # an ungated batch is refused
    with pytest.raises(GateClosedError, match="has not passed its gate"):
        apply_batch(ledger, a.batch_id, base_url=server.url)

    gate = gate_batch(ledger, a.batch_id)
    assert gate.passed and ledger.batch(a.batch_id).gate_verdict == "pass"

    applied = apply_batch(ledger, a.batch_id, base_url=server.url, rate_limit=200)
    assert applied.ok and applied.status == "applied" and len(applied.applied) == 8
    ids_a = set(a.selection["subscription_id"])
    counts = subscription_counts(server.url)
    assert {s: counts[s] for s in ids_a} == dict.fromkeys(ids_a, 1)

    # rerunning an applied batch sends nothing new and duplicates nothing
    again = apply_batch(ledger, a.batch_id, base_url=server.url, rate_limit=200)
    assert again.report is not None and not again.report.created and again.ok
    assert subscription_counts(server.url) == counts

    verified = verify_batch(ledger, a.batch_id, base_url=server.url)
    assert verified.ok and sorted(verified.verified) == sorted(ids_a)
    assert ledger.batch(a.batch_id).status == "verified"
    assert (a.out_dir / VERIFY_FILE).exists()

    cut = cutover_batch(ledger, a.batch_id, stop_statement=STOP, source_url=f"sqlite:///{legacy}")
    assert cut.status == "cut_over" and cut.statement_rows == 8
    handover = pd.read_csv(a.out_dir / CUTOVER_FILE)
    assert list(handover.columns) == [
        "legacy_subscription_id",
        "paid_through",
        "target_subscription_id",
        "first_target_period_start",
    ]
    assert (handover["paid_through"] == handover["first_target_period_start"]).all()
    assert set(handover["legacy_subscription_id"]) == ids_a
    with sqlite3.connect(legacy) as db:
        stopped = {
            r[0] for r in db.execute("SELECT plan_ref FROM plans_active WHERE plan_state = 'CNCL'")
        }
    assert ids_a <= stopped
    with pytest.raises(MigrationError, match="cannot be rolled back"):
        rollback_batch(ledger, a.batch_id, base_url=server.url)

    # the next plans pick other subscriptions
    b = _plan(ledger, env, tmp_path)
    c = _plan(ledger, env, tmp_path)
    ids_b, ids_c = set(b.selection["subscription_id"]), set(c.selection["subscription_id"])
    assert len(ids_b) == len(ids_c) == 8 and not (ids_a & ids_b) and not (ids_c & (ids_a | ids_b))

    # a third batch applied (forced past its gate, the reason logged) and rolled back
    apply_batch(ledger, c.batch_id, base_url=server.url, rate_limit=200, force_reason="rehearsal")
    assert all(subscription_counts(server.url)[s] == 1 for s in ids_c)
    log = ledger.log(c.batch_id)
    assert (log["action"] == "force").any()
    assert "rehearsal" in str(log.loc[log["action"] == "force", "detail"].iloc[0])
    rolled = rollback_batch(ledger, c.batch_id, base_url=server.url)
    assert sorted(rolled.rolled_back) == sorted(ids_c)
    assert all(subscription_counts(server.url)[s] == 0 for s in ids_c)
    assert not (ids_c & ledger.taken_subscriptions())
    assert (
        ledger.objects(c.batch_id, live_only=True)["kind"]
        .isin(["product", "price", "meter", "tax_rate"])
        .all()
    )  # shared catalog objects stay; customers, coupons and subscriptions are gone

    # its customers return to the pool: the next plan takes them again, and apply re-creates them
    d = _plan(ledger, env, tmp_path)
    assert set(d.selection["subscription_id"]) == ids_c
    reapplied = apply_batch(
        ledger, d.batch_id, base_url=server.url, rate_limit=200, force_reason="same as p2-0003"
    )
    assert reapplied.ok

    # every applied subscription exists exactly once on the target, as the ledger says
    counts = subscription_counts(server.url)
    assert {s: n for s, n in counts.items() if n} == dict.fromkeys(ids_a | ids_c, 1)
    on_target = {
        s["metadata"]["legacy_subscription_id"]: s["id"] for s in target_subscriptions(server.url)
    }
    assert {**_ledger_targets(ledger, a.batch_id), **_ledger_targets(ledger, d.batch_id)} == (
        on_target
    )

    status = ledger.status()
    table = status.batches.set_index("batch_id")
    assert table.loc[a.batch_id, "cut_over"] == 8 and table.loc[c.batch_id, "rolled_back"] == 8
    assert table.loc[b.batch_id, "planned"] == 8 and table.loc[d.batch_id, "applied"] == 8
    actions = set(ledger.log()["action"])
    assert {"plan", "gate", "apply", "verify", "cutover", "rollback", "force"} <= actions


def test_apply_stops_when_a_batch_customer_changed_since_plan(
    env: DemoEnv, ledger: Ledger, tmp_path: Path
) -> None:
    mine = env.fresh_copy(tmp_path / "company")
    planned = _plan(ledger, mine, tmp_path, size=4)
    changed = str(planned.selection["customer_id"].iloc[1])
    with sqlite3.connect(mine.legacy_db) as db:
        db.execute(
            "UPDATE accounts SET company_name = company_name || ' (renamed)' WHERE acct_no = ?",
            (changed,),
        )
    extract(f"sqlite:///{mine.legacy_db}", mine.spec, mine.snapshot, progress=False)
    with pytest.raises(InputsChangedError) as caught:
        apply_batch(ledger, planned.batch_id, base_url="http://127.0.0.1:9", force_reason="test")
    message = str(caught.value)
    assert f"1 customer(s) of batch {planned.batch_id} changed" in message
    assert changed in message and "\n" not in message
    assert ledger.batch(planned.batch_id).status == "gated"  # nothing was sent or recorded
    assert ledger.objects(planned.batch_id).empty


def test_where_filters_and_names_the_columns_when_it_cannot() -> None:
    frame = pd.DataFrame(
        {
            "subscription_id": ["s1", "s2", "s3"],
            "currency": ["usd", "eur", "usd"],
            "new_plan": ["advanced_month", "expert_month", "advanced_month + fin_resolution"],
            "items": [1, 1, 2],
        }
    )
    assert apply_where(frame, 'currency == "usd" and items > 1')["subscription_id"].tolist() == [
        "s3"
    ]
    assert apply_where(frame, 'new_plan.str.contains("advanced")').shape[0] == 2
    assert apply_where(frame, None) is frame
    for bad, why in (
        ("currency ==", "SyntaxError"),
        ("no_such_column > 1", "no_such_column"),
        ("items + 1", "not allowed"),
    ):
        with pytest.raises(SelectionError, match=why) as caught:
            apply_where(frame, bad)
        assert "\n" not in str(caught.value) and "subscription_id" in str(caught.value)


def _snapshot(env: DemoEnv) -> Snapshot:
    return read_snapshot(env.snapshot)


def test_customer_fingerprints_change_only_with_the_customers_rows(env: DemoEnv) -> None:
    snap = _snapshot(env)
    before = customer_fingerprints(snap)
    assert before.str.fullmatch(r"[0-9a-f]{64}").all()
    assert before.is_unique
    # row order does not matter
    shuffled = Snapshot(
        {name: frame.sample(frac=1, random_state=1) for name, frame in snap.tables.items()}
    )
    assert customer_fingerprints(shuffled).equals(before)
    # one usage row of one customer changes: only that customer's fingerprint moves
    subs = snap["subscriptions"].set_index("subscription_id")["customer_id"]
    usage = snap["usage"].copy()
    owner = str(subs[usage["subscription_id"].iloc[0]])
    usage.loc[usage.index[0], "quantity"] = int(usage["quantity"].iloc[0]) + 1
    edited = Snapshot({**snap.tables, "usage": usage})
    after = customer_fingerprints(edited)
    assert changed_customers(before.to_dict(), after) == [owner]
    # a subset gives the same values as the whole
    some = before.index[:5].tolist()
    assert customer_fingerprints(snap, some).equals(before[some])
    assert shared_fingerprint(snap) == shared_fingerprint(shuffled)
    rates = snap["tax_rates"].copy()
    rates.loc[rates.index[0], "percentage"] = "99"
    assert shared_fingerprint(Snapshot({**snap.tables, "tax_rates": rates})) != (
        shared_fingerprint(snap)
    )


def test_batches_hold_whole_customers_in_risk_order() -> None:
    frame = pd.DataFrame(
        {
            "subscription_id": ["s1", "s2", "s3", "s4", "s5"],
            "customer_id": ["c2", "c1", "c1", "c3", "c4"],
            "flags": [0, 0, 0, 1, 0],
            "change_pct": [5.0, 1.0, 9.0, 0.0, 2.0],
            "items": [1, 1, 1, 1, 1],
            "price_protection": [False, False, False, False, True],
        }
    )
    ranked = risk_order(frame)
    assert ranked["subscription_id"].tolist() == ["s2", "s5", "s1", "s3", "s4"]
    assert whole_customers(ranked, 2)["subscription_id"].tolist() == ["s2", "s3"]
    assert whole_customers(ranked, 3)["subscription_id"].tolist() == ["s2", "s3", "s5"]
    assert whole_customers(ranked, 1)["subscription_id"].tolist() == ["s2", "s3"]  # alone


def test_a_subscription_the_target_bills_differently_stays_unverified(
    env: DemoEnv, server: LocalServer, ledger: Ledger, tmp_path: Path
) -> None:
    planned = _plan(ledger, env, tmp_path, size=3)
    apply_batch(ledger, planned.batch_id, base_url=server.url, force_reason="test")
    subs = ledger.subscriptions(planned.batch_id)
    odd = str(subs["subscription_id"].iloc[0])
    c = client(server.url)
    item = c.v1.subscriptions.retrieve(str(subs["target_subscription_id"].iloc[0])).to_dict()
    first = item["items"]["data"][0]
    c.v1.subscription_items.update(first["id"], params={"quantity": int(first["quantity"]) + 3})

    result = verify_batch(ledger, planned.batch_id, base_url=server.url)
    assert list(result.unverified) == [odd] and "unexplained" in result.unverified[odd]
    assert len(result.verified) == 2 and result.status == "applied"
    findings = pd.read_csv(result.findings_path)
    assert set(findings.loc[findings["cause"] == "unexplained", "subscription_id"]) == {odd}
    states = ledger.subscriptions(planned.batch_id).set_index("subscription_id")["state"]
    assert states[odd] == "applied" and (states.drop(odd) == "verified").all()
    details = [d for d in ledger.log(planned.batch_id)["detail"] if isinstance(d, dict)]
    assert any(odd in (d.get("unverified") or {}) for d in details)

    with pytest.raises(GateClosedError, match=f"not verified: {odd}"):
        cutover_batch(ledger, planned.batch_id)
    cut = cutover_batch(ledger, planned.batch_id, force_reason="finance signed off the difference")
    assert cut.forced == [odd] and cut.status == "cut_over" and cut.statement_rows is None
    log = ledger.log(planned.batch_id, subscription_id=odd)
    assert log["to_state"].tolist()[:2] == ["cut_over", "verified"]
    assert "finance signed off" in str(log["detail"].iloc[1])


def test_the_stop_billing_statement_runs_in_one_transaction(tmp_path: Path) -> None:
    db = tmp_path / "legacy.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE plans (ref TEXT PRIMARY KEY, billing INTEGER)")
        conn.execute("CREATE TABLE stopped (ref TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO plans VALUES (?, 1)", [("a",), ("b",), ("c",)])
    url = f"sqlite:///{db}"
    assert (
        stop_billing(url, "UPDATE plans SET billing = 0 WHERE ref = :subscription_id", ["a"]) == 1
    )
    assert (
        stop_billing(url, "UPDATE plans SET billing = 0 WHERE ref IN :subscription_ids", ["b"]) == 1
    )
    # the second insert fails: the first is not committed either
    with pytest.raises(MigrationError, match="nothing was changed"):
        stop_billing(url, "INSERT INTO stopped VALUES (:subscription_id)", ["c", "c"])
    with pytest.raises(MigrationError, match=":subscription_ids"):
        stop_billing(url, "UPDATE plans SET billing = 0", ["c"])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT ref, billing FROM plans ORDER BY ref").fetchall() == [
            ("a", 0),
            ("b", 0),
            ("c", 1),
        ]
        assert conn.execute("SELECT count(*) FROM stopped").fetchone() == (0,)
