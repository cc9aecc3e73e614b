"""The apply lease: one holder at a time, renewed by a heartbeat, gone when it expires."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from ledger_cases import FINGERPRINTS, plan_frame

from shadowbill.ledger import LeaseHeldError, Ledger
from shadowbill.ledger.schema import batches


def _expire(ledger: Ledger, batch_id: str) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with ledger._write() as conn:
        conn.execute(
            batches.update().where(batches.c.batch_id == batch_id).values(lease_expires=past)
        )


def test_a_live_lease_refuses_another_holder_and_names_the_holder(ledger: Ledger) -> None:
    batch = ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    assert ledger.lease(batch) is None
    taken = ledger.acquire_lease(batch, "alice@host pid 1", seconds=60)
    assert ledger.lease(batch) == taken
    with pytest.raises(LeaseHeldError, match=r"being applied by alice@host pid 1 \(heartbeat"):
        ledger.acquire_lease(batch, "bob@host pid 2")
    assert ledger.acquire_lease(batch, "alice@host pid 1").holder == "alice@host pid 1"
    assert ledger.renew_lease(batch, "alice@host pid 1") is True
    assert ledger.renew_lease(batch, "bob@host pid 2") is False
    ledger.release_lease(batch, "bob@host pid 2")  # not bob's: kept
    assert ledger.lease(batch) is not None
    ledger.release_lease(batch, "alice@host pid 1")
    assert ledger.lease(batch) is None


def test_an_expired_lease_is_no_lease(ledger: Ledger) -> None:
    batch = ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    ledger.acquire_lease(batch, "crashed@host pid 9", seconds=60)
    _expire(ledger, batch)
    assert ledger.lease(batch) is None
    assert ledger.acquire_lease(batch, "next@host pid 10").holder == "next@host pid 10"


def test_status_flags_objects_left_live_by_a_rolled_back_batch(ledger: Ledger) -> None:
    batch = ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    ledger.record_object(batch, "customer:c_a", "customer", "cus_X")
    ledger.record_object(batch, "price:p", "price", "price_X")  # catalog: kept on purpose
    ledger.record_object(batch, "subscription:a", "subscription", "sub_X", subscription_id="a")
    ledger.mark_deleted(batch, "customer:c_a")
    ledger.transition(batch, ["a"], "rolled_back")
    ledger.set_batch_status(batch, "rolled_back")
    status = ledger.status()
    assert not status.ok
    assert status.orphans[["batch_id", "target_id"]].values.tolist() == [[batch, "sub_X"]]
    assert status.as_dict()["orphans"][0]["target_id"] == "sub_X"
    with ledger._read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(batches)).scalar() == 1


def test_the_lease_of_a_killed_process_on_this_host_is_dead_at_once(ledger: Ledger) -> None:
    import subprocess
    import sys

    from shadowbill.ledger.lease_records import lease_holder

    batch = ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = lease_holder("tester").rsplit(" pid ", 1)[0] + f" pid {child.pid}"
    ledger.acquire_lease(batch, dead, seconds=600)
    assert ledger.lease(batch) is None  # SIGKILLed apply: resume at once
    assert ledger.acquire_lease(batch, "next@elsewhere pid 1").holder == "next@elsewhere pid 1"
    assert ledger.lease(batch) is not None  # another host's process: only expiry tells
