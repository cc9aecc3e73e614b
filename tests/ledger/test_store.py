"""The ledger's main flows, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import replace

import pandas as pd
import pytest
from ledger_cases import FINGERPRINTS, audit_count, plan_frame, sub_ids

from shadowbill.ledger import (
    BatchExistsError,
    DuplicateObjectError,
    LedgerError,
    PlannedFrom,
    SecretInLedgerError,
    SubscriptionTakenError,
    TransitionError,
)

UTC = dt.UTC


def _states(ledger, batch):
    return ledger.subscriptions(batch).set_index("subscription_id")["state"].to_dict()


# -- batches ---------------------------------------------------------------------------


def test_batch_ids_number_per_phase(ledger, make_batch):
    assert ledger.next_batch_id(1) == "p1-0001"
    assert make_batch(["a1"], phase=1) == "p1-0001"
    assert ledger.next_batch_id(1) == "p1-0002"
    assert make_batch(["a2"], phase=1) == "p1-0002"
    assert make_batch(["b1"], phase=2) == "p2-0001"
    assert make_batch(["a3"], phase=1, batch_id="p1-0041") == "p1-0041"
    assert make_batch(["a4"], phase=1) == "p1-0042"
    assert make_batch(["c1"], phase=3, batch_id="pilot") == "pilot"
    assert ledger.next_batch_id(3) == "p3-0001"
    assert make_batch(["c2"], phase=3) == "p3-0001"
    with pytest.raises(BatchExistsError, match="batch p1-0002 already exists"):
        make_batch(["a5"], phase=1, batch_id="p1-0002")
    with pytest.raises(LedgerError, match="batch id"):
        make_batch(["a6"], batch_id="has space")
    with pytest.raises(LedgerError, match="phase must be a positive integer"):
        make_batch(["a7"], phase=0)
    assert ledger.batches()["batch_id"].tolist() == [
        "p1-0001",
        "p1-0002",
        "p2-0001",
        "p1-0041",
        "p1-0042",
        "pilot",
        "p3-0001",
    ]
    assert ledger.batches(phase=2)["batch_id"].tolist() == ["p2-0001"]


def test_a_batch_records_its_plan_and_fingerprints(ledger):
    frame = plan_frame(["s1", "s2"])
    frame["paid_through"] = pd.Series([pd.Timestamp("2026-03-01 02:00", tz="Europe/Paris"), pd.NaT])
    frame["first_target_period_start"] = ["2026-03-01T01:00:00", "2026-03-05T00:00:00Z"]
    batch = ledger.create_batch(2, frame, FINGERPRINTS, detail={"cohort": "eu"})
    info = ledger.batch(batch)
    assert (info.batch_id, info.phase, info.status, info.size) == ("p2-0001", 2, "planned", 2)
    assert info.fingerprints == FINGERPRINTS
    assert info.rollout_fingerprint == "r" * 64 and info.snapshot_fingerprint == "s" * 64
    assert info.created_by == "tester" and info.created_at.tzinfo is not None
    assert not info.gate_open
    subs = ledger.subscriptions(batch)
    assert subs["state"].tolist() == ["planned", "planned"]
    assert str(subs["paid_through"].dtype) == "datetime64[us, UTC]"
    # Paris 02:00 in winter is 01:00 UTC; naive text is UTC
    assert subs["paid_through"].iloc[0] == pd.Timestamp("2026-03-01 01:00", tz="UTC")
    assert pd.isna(subs["paid_through"].iloc[1])
    assert subs["first_target_period_start"].tolist() == [
        pd.Timestamp("2026-03-01 01:00", tz="UTC"),
        pd.Timestamp("2026-03-05", tz="UTC"),
    ]
    log = ledger.log(batch)
    assert len(log) == 3  # one for the batch, one per subscription
    head = log[log["subscription_id"].isna()].iloc[0]
    assert head["action"] == "plan" and head["actor"] == "tester"
    assert head["fingerprints"] == FINGERPRINTS
    assert head["detail"] == {"cohort": "eu", "size": 2}
    with pytest.raises(LedgerError, match="no batch p9-0001"):
        ledger.batch("p9-0001")


def test_a_plan_must_be_complete_and_unique(ledger):
    with pytest.raises(LedgerError, match="lack the column"):
        ledger.create_batch(1, pd.DataFrame({"subscription_id": ["a"]}), FINGERPRINTS)
    with pytest.raises(LedgerError, match="at least one subscription"):
        ledger.create_batch(1, plan_frame([]), FINGERPRINTS)
    with pytest.raises(LedgerError, match="subscription a is in the batch twice"):
        ledger.create_batch(1, plan_frame(["a", "a"]), FINGERPRINTS)
    with pytest.raises(LedgerError, match="missing id"):
        ledger.create_batch(1, plan_frame(["a", None]), FINGERPRINTS)  # type: ignore[list-item]
    with pytest.raises(LedgerError, match="not a timestamp"):
        ledger.create_batch(1, plan_frame(["a"], paid_through="soon"), FINGERPRINTS)
    assert ledger.batches().empty


def test_subscriptions_in_a_live_batch_are_taken_until_rolled_back(ledger, make_batch):
    first = make_batch(sub_ids(8))
    assert ledger.taken_subscriptions() == set(sub_ids(8))
    with pytest.raises(SubscriptionTakenError) as info:
        make_batch(sub_ids(10))
    message = str(info.value)
    assert message.startswith("8 subscription(s) already in a live batch: sub_000000 (p1-0001")
    assert "sub_000004" in message and "sub_000005" not in message  # names at most 5
    assert len(ledger.batches()) == 1
    # roll the batch back: the subscriptions return to the pool
    ledger.transition(first, sub_ids(3), "applied")
    ledger.transition(first, sub_ids(8), "rolled_back")
    ledger.set_batch_status(first, "rolled_back")
    assert ledger.taken_subscriptions() == set()
    second = make_batch(sub_ids(10))
    assert second == "p1-0002"
    assert ledger.taken_subscriptions() == set(sub_ids(10))
    assert set(_states(ledger, first).values()) == {"rolled_back"}


# -- the whole flow ----------------------------------------------------------------------


def test_plan_gate_apply_verify_cut_over(ledger, make_batch):
    ids = sub_ids(6)
    batch = make_batch(ids)
    with pytest.raises(TransitionError, match="cannot be applied: its gate has not passed"):
        ledger.set_batch_status(batch, "applying")
    ledger.record_gate(batch, "fail", detail={"unexplained": 3})
    with pytest.raises(TransitionError, match=r"gate has not passed \(fail\)"):
        ledger.set_batch_status(batch, "applying")
    with pytest.raises(LedgerError, match="needs a reason"):
        ledger.record_gate(batch, "fail", forced_reason="  ")
    ledger.record_gate(batch, "fail", forced_reason="finance signed off the 3 cents")
    info = ledger.batch(batch)
    assert info.gate_open and info.status == "gated" and info.gate_at is not None
    ledger.set_batch_status(batch, "applying")
    with pytest.raises(TransitionError, match="a gate is recorded before apply"):
        ledger.record_gate(batch, "pass")

    assert ledger.transition(batch, ids, "applied") == 6
    targets = pd.DataFrame(
        {
            "subscription_id": ids,
            "target_subscription_id": [f"sub_T{i}" for i in range(6)],
            "target_customer_id": [f"cus_T{i}" for i in range(5)] + [None],
        }
    )
    assert ledger.set_targets(batch, targets) == 6
    ledger.set_targets(
        batch,
        pd.DataFrame({"subscription_id": [ids[5]], "target_customer_id": ["cus_T5"]}),
    )
    ledger.set_batch_status(batch, "applied")
    assert ledger.transition(batch, ids, "verified") == 6
    ledger.set_batch_status(batch, "verified")
    assert ledger.transition(batch, ids, "cut_over") == 6
    ledger.set_batch_status(batch, "cut_over")

    subs = ledger.subscriptions(batch)
    assert set(subs["state"]) == {"cut_over"}
    assert subs["target_subscription_id"].tolist() == [f"sub_T{i}" for i in range(6)]
    assert subs["target_customer_id"].tolist() == [f"cus_T{i}" for i in range(6)]
    with pytest.raises(TransitionError, match="cut-over subscription is final"):
        ledger.transition(batch, ids[:1], "rolled_back")
    with pytest.raises(TransitionError, match="cut over and cannot be rolled back"):
        ledger.set_batch_status(batch, "rolled_back")

    actions = ledger.log(batch)["action"].tolist()[::-1]  # oldest first
    assert actions[:7] == ["plan"] * 7
    assert actions[7:9] == ["gate", "force"]
    assert actions.count("apply") == 6 + 2 and actions.count("cutover") == 6 + 1
    status = ledger.status()
    row = status.batches.set_index("batch_id").loc[batch]
    assert row["status"] == "cut_over" and row["cut_over"] == 6 and row["planned"] == 0
    assert status.ok
    assert json.loads(json.dumps(status.as_dict()))["batches"][0]["cut_over"] == 6


def test_a_refused_move_changes_nothing_and_names_the_subscription(ledger, make_batch):
    batch = make_batch(["a", "b", "c"])
    ledger.transition(batch, ["a"], "applied")
    before = audit_count(ledger)
    with pytest.raises(TransitionError) as info:
        ledger.transition(batch, ["a", "b", "c"], "verified")
    assert str(info.value).startswith(
        "subscription b of batch p1-0001 is planned and cannot move to verified"
    )
    assert "1 more refused: c (planned)" in str(info.value)
    assert _states(ledger, batch) == {"a": "applied", "b": "planned", "c": "planned"}
    assert audit_count(ledger) == before
    with pytest.raises(TransitionError, match="not in batch p1-0001: zz"):
        ledger.transition(batch, ["a", "zz"], "verified")
    with pytest.raises(TransitionError, match="unknown subscription state"):
        ledger.transition(batch, ["a"], "done")
    with pytest.raises(TransitionError, match="applied is reached only from"):
        ledger.transition(batch, ["a"], "applied")
    assert ledger.transition(batch, ["a", "b"], "applied", skip_already=True) == 1
    assert ledger.transition(batch, ["a", "b"], "applied", skip_already=True) == 0
    assert ledger.transition(batch, [], "applied") == 0


def test_failures_keep_their_error_until_retried(ledger, make_batch):
    batch = make_batch(["a", "b", "c"])
    ledger.record_gate(batch, "pass")
    ledger.set_batch_status(batch, "applying")
    ledger.transition(batch, ["a"], "applied")
    ledger.transition(
        batch, ["b", "c"], "failed", error={"b": "card_declined on customer", "c": "timeout"}
    )
    subs = ledger.subscriptions(batch).set_index("subscription_id")
    assert subs.loc["b", "error"] == "card_declined on customer" and pd.isna(subs.loc["a", "error"])
    ledger.set_batch_status(batch, "applied")
    stuck = ledger.status().stuck.set_index("subscription_id")
    assert sorted(stuck.index) == ["b", "c"]
    assert stuck.loc["c", "reason"] == "failed" and stuck.loc["c", "error"] == "timeout"
    log = ledger.log(batch, subscription_id="b")
    assert log.iloc[0]["detail"] == {"error": "card_declined on customer"}
    assert log.iloc[0]["fingerprints"] == {"customer": f"{1:064x}"}

    ledger.transition(batch, ["b"], "planned")  # retry
    ledger.transition(batch, ["b"], "applied")
    ledger.transition(batch, ["a", "b"], "verified")
    ledger.set_batch_status(batch, "verified")
    assert pd.isna(ledger.subscriptions(batch).set_index("subscription_id").loc["b", "error"])
    stuck = ledger.status().stuck
    assert stuck[["subscription_id", "reason"]].values.tolist() == [["c", "failed"]]
    ledger.transition(batch, ["c"], "rolled_back", detail={"why": "gave up"})
    ledger.set_batch_status(batch, "rolled_back")
    stuck = ledger.status().stuck
    assert stuck[["subscription_id", "reason"]].values.tolist() == [
        ["a", "not rolled back, batch is rolled_back"],
        ["b", "not rolled back, batch is rolled_back"],
    ]


def test_behind_their_batch_is_stuck(ledger, make_batch):
    batch = make_batch(["a", "b"])
    ledger.record_gate(batch, "pass")
    ledger.set_batch_status(batch, "applying")
    ledger.transition(batch, ["a"], "applied")
    stuck = ledger.status().stuck
    assert stuck[["subscription_id", "reason"]].values.tolist() == [
        ["b", "planned, batch is applying"]
    ]


def test_batch_status_follows_its_table(ledger, make_batch):
    batch = make_batch(["a"])
    with pytest.raises(TransitionError, match="planned and cannot become verified"):
        ledger.set_batch_status(batch, "verified")
    with pytest.raises(LedgerError, match="unknown batch status"):
        ledger.set_batch_status(batch, "done")
    ledger.set_batch_status(batch, "rolled_back")
    with pytest.raises(TransitionError, match="rolled_back, which is final"):
        ledger.set_batch_status(batch, "planned")
    with pytest.raises(LedgerError, match="rolled back; nothing more is created"):
        ledger.record_object(batch, "customer:a", "customer", "cus_1")


# -- target objects ----------------------------------------------------------------------


def test_objects_are_recorded_once_and_duplicates_refused(ledger, make_batch):
    one = make_batch(["a"])
    two = make_batch(["b"])
    assert ledger.record_object(one, "price:adv", "price", "price_1", "idem-1") is True
    assert ledger.record_object(one, "price:adv", "price", "price_1", "idem-1") is False
    assert ledger.record_object(
        one, "customer:a", "customer", "cus_1", "idem-2", None, customer_id="a"
    )
    ledger.record_object(one, "subscription:a", "subscription", "sub_1", "idem-3", "a")
    with pytest.raises(DuplicateObjectError, match="duplicate on target: operation price:adv"):
        ledger.record_object(one, "price:adv", "price", "price_2", "idem-1")
    # a shared catalog object: another batch finds and reuses it, and may not create another
    assert ledger.any_object_id("price:adv") == "price_1"
    assert ledger.object_id(two, "price:adv") is None
    with pytest.raises(DuplicateObjectError, match="created as price_1 by batch p1-0001"):
        ledger.record_object(two, "price:adv", "price", "price_9")
    assert ledger.record_object(two, "price:adv", "price", "price_1") is True
    assert ledger.object_batches("price:adv") == ["p1-0001", "p1-0002"]

    objects = ledger.objects(one)
    assert objects["op_key"].tolist() == ["price:adv", "customer:a", "subscription:a"]
    assert objects.set_index("op_key").loc["subscription:a", "subscription_id"] == "a"
    assert objects.set_index("op_key").loc["customer:a", "customer_id"] == "a"
    assert str(objects["created_at"].dtype) == "datetime64[us, UTC]"
    assert objects["deleted_at"].isna().all()

    ledger.mark_deleted(one, "subscription:a")
    ledger.mark_deleted(one, "subscription:a")  # again: nothing changes
    assert ledger.object_id(one, "subscription:a") is None
    assert ledger.objects(one, live_only=True)["op_key"].tolist() == ["price:adv", "customer:a"]
    # deleting a shared object marks every record of it
    ledger.mark_deleted(one, "price:adv")
    assert ledger.any_object_id("price:adv") is None
    assert ledger.object_batches("price:adv") == []
    with pytest.raises(LedgerError, match="recorded no object for operation nope"):
        ledger.mark_deleted(one, "nope")
    # once deleted, the operation may create a new object
    assert ledger.record_object(one, "subscription:a", "subscription", "sub_2", "idem-4", "a")
    assert ledger.object_id(one, "subscription:a") == "sub_2"


def test_record_object_is_thread_safe(ledger, make_batch):
    batch = make_batch(["a"])
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(40):
                ledger.record_object(
                    batch, f"customer:{worker}-{i}", "customer", f"cus_{worker}_{i}"
                )
                # every worker also records the one shared object
                ledger.record_object(batch, "product:seats", "product", "prod_1")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    objects = ledger.objects(batch)
    assert len(objects) == 6 * 40 + 1
    assert objects["op_key"].is_unique


# -- scale ---------------------------------------------------------------------------------


def test_ten_thousand_subscriptions_move_in_bulk(ledger, make_batch):
    ids = sub_ids(10_000)
    batch = make_batch(ids)
    assert ledger.transition(batch, ids, "applied") == 10_000
    assert ledger.transition(batch, pd.Series(ids[:5000]), "verified") == 5000
    assert ledger.transition(batch, ids, "failed", error="target rate limited") == 10_000
    counts = ledger.status().batches.set_index("batch_id").loc[batch]
    assert counts["failed"] == 10_000
    assert audit_count(ledger) == 1 + 10_000 + 10_000 + 5_000 + 10_000
    assert set(ledger.subscriptions(batch, state="failed")["error"]) == {"target rate limited"}


# -- the log ---------------------------------------------------------------------------------


def test_the_log_is_newest_first_and_filters(ledger, make_batch):
    one = make_batch(["a", "b"])
    two = make_batch(["c"], phase=2)
    ledger.transition(one, ["a"], "applied", fingerprints={"plan": "f" * 8})
    log = ledger.log()
    assert len(log) == 3 + 2 + 1
    assert log["id"].is_monotonic_decreasing
    newest = log.iloc[0]
    assert (newest["action"], newest["batch_id"], newest["subscription_id"]) == (
        "apply",
        one,
        "a",
    )
    assert (newest["from_state"], newest["to_state"]) == ("planned", "applied")
    assert newest["fingerprints"] == {"customer": f"{0:064x}", "plan": "f" * 8}
    assert newest["at"].tzinfo is not None
    assert len(ledger.log(one)) == 4 and len(ledger.log(two)) == 2
    assert len(ledger.log(limit=2)) == 2
    assert ledger.log(subscription_id="a")["action"].tolist() == ["apply", "plan"]


# -- secrets -----------------------------------------------------------------------------------


def test_the_ledger_refuses_secrets(ledger, make_batch, monkeypatch):
    batch = make_batch(["a"])
    before = audit_count(ledger)
    with pytest.raises(SecretInLedgerError, match="never stores secrets"):
        ledger.transition(batch, ["a"], "failed", detail={"request": {"key": "sk_test_4eC39Hq"}})
    with pytest.raises(SecretInLedgerError):
        ledger.record_gate(batch, "fail", forced_reason="use rk_live_abcDEF123")
    with pytest.raises(SecretInLedgerError):
        make_batch(["b"], detail={"webhook": "whsec_abc123"})
    monkeypatch.setenv("STRIPE_API_KEY", "opaque-key-value-42")
    with pytest.raises(SecretInLedgerError) as info:
        ledger.transition(batch, ["a"], "failed", error="auth failed for opaque-key-value-42")
    assert "opaque-key-value-42" not in str(info.value)
    with pytest.raises(SecretInLedgerError):
        ledger.record_object(batch, "customer:a", "customer", "opaque-key-value-42")
    with pytest.raises(SecretInLedgerError):
        ledger.set_targets(
            batch,
            pd.DataFrame({"subscription_id": ["a"], "target_customer_id": ["sk_live_x1"]}),
        )
    assert audit_count(ledger) == before
    assert _states(ledger, batch) == {"a": "planned"}
    assert ledger.objects(batch).empty
    # a masked key in an error message is fine
    ledger.transition(batch, ["a"], "failed", error="Invalid API Key provided: sk_test_****1234")


def test_an_empty_ledger_answers_with_empty_frames(ledger):
    status = ledger.status()
    assert status.ok and status.batches.empty and status.stuck.empty
    assert list(status.batches.columns[-6:]) == [
        "planned",
        "applied",
        "verified",
        "cut_over",
        "failed",
        "rolled_back",
    ]
    assert json.loads(json.dumps(status.as_dict())) == {"batches": [], "stuck": [], "orphans": []}
    assert ledger.log().empty and ledger.batches().empty
    assert ledger.taken_subscriptions() == set()
    assert ledger.any_object_id("price:x") is None and ledger.object_batches("price:x") == []
    assert ledger.revision == "0005"


def test_what_a_batch_was_planned_from_is_kept_in_its_columns(ledger, make_batch):
    planned = PlannedFrom(
        dt.datetime(2026, 2, 1, 12, tzinfo=UTC), "/snap", "/rollout.yaml", None, "/out/p1-0001"
    )
    batch_id = make_batch(["a1"], planned_from=planned)
    assert ledger.batch(batch_id).planned_from == planned
    assert ledger.batch(make_batch(["a2"])).planned_from is None
    with pytest.raises(SecretInLedgerError):
        make_batch(["a3"], planned_from=replace(planned, out_dir="/x/sk_live_abcdefghijklmnop1234"))
