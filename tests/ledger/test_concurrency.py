"""Two processes writing one ledger at the same time leave it whole and consistent."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from shadowbill.ledger import open_ledger

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from shadowbill.ledger import open_ledger

    url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    import time
    while time.time() < start:  # start both processes together
        time.sleep(0.005)
    ledger = open_ledger(url, actor=name)
    for b in range(6):
        ids = [f"{name}_{b}_{i}" for i in range(20)]
        frame = pd.DataFrame({"subscription_id": ids, "customer_id": ids})
        batch = ledger.create_batch(1, frame, {"rollout": name})
        ledger.record_gate(batch, "pass")
        ledger.set_batch_status(batch, "applying")
        ledger.record_object(batch, "product:seats", "product", "prod_shared")
        for sid in ids:
            ledger.record_object(batch, f"customer:{sid}", "customer", f"cus_{sid}")
        ledger.transition(batch, ids, "applied")
        ledger.transition(batch, ids[:10], "failed", error="boom")
    ledger.close()
    print("done", name)
    """
)


@pytest.mark.slow
def test_two_processes_share_one_ledger(ledger_url: str) -> None:
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, ledger_url, name, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.startswith("done")

    if ledger_url.startswith("sqlite"):
        db = sa.engine.make_url(ledger_url).database or ""
        with sqlite3.connect(db) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with open_ledger(ledger_url) as ledger:
        batches = ledger.batches()
        # both processes numbered their batches from the same counter without a clash
        assert sorted(batches["batch_id"]) == [f"p1-{n:04d}" for n in range(1, 13)]
        status = ledger.status().batches
        assert status["applied"].sum() == 12 * 10 and status["failed"].sum() == 12 * 10
        log = ledger.log()
        assert set(log["actor"]) == {"alpha", "beta"}
        assert len(log) == 12 * (1 + 20 + 1 + 1 + 20 + 10)
        objects = sum(len(ledger.objects(b)) for b in batches["batch_id"])
        assert objects == 12 * 21
        assert ledger.any_object_id("product:seats") == "prod_shared"


def test_readers_do_not_wait_for_a_writer_and_writers_wait_their_turn(sqlite_ledger, tmp_path):
    ledger = sqlite_ledger
    batch = ledger.create_batch(
        1, pd.DataFrame({"subscription_id": ["a"], "customer_id": ["c"]}), {}
    )
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.monotonic()
    assert ledger.batches()["batch_id"].tolist() == [batch]  # WAL: reading does not wait
    assert ledger.taken_subscriptions() == {"a"}
    assert time.monotonic() - started < 5
    release = threading.Timer(0.5, other.execute, args=("COMMIT",))
    release.start()
    ledger.record_object(batch, "customer:a", "customer", "cus_1")  # waits for the lock
    release.join()
    other.close()
    assert time.monotonic() - started >= 0.5
    assert ledger.object_id(batch, "customer:a") == "cus_1"


def test_a_new_ledger_file_waits_for_another_process_holding_its_write_lock(tmp_path):
    # Switching a file into WAL upgrades a read lock to the write lock, where SQLite does
    # not call the busy handler: without the ledger's own wait this fails at once.
    path = tmp_path / "ledger.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process creating the same ledger
    release = threading.Timer(0.5, other.execute, args=("COMMIT",))
    release.start()
    started = time.monotonic()
    with open_ledger(f"sqlite:///{path}") as ledger:
        assert ledger.batches().empty
    release.join()
    other.close()
    assert time.monotonic() - started >= 0.5
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
