"""The ledger's own schema: Alembic revisions, upgrades of older ledgers, where it lives."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from ledger_cases import FINGERPRINTS, plan_frame

from shadowbill.ledger import (
    DEFAULT_URL,
    URL_ENV,
    LedgerError,
    SubscriptionTakenError,
    migrations,
    open_ledger,
)
from shadowbill.ledger.schema import ALEMBIC_DIR, VERSION_TABLE, metadata

T0 = dt.datetime(2026, 1, 10, 9, 30, tzinfo=dt.UTC)


def _write_as_release_0001(url: str) -> None:
    """A ledger as a release at schema 0001 left it: a batch halfway through apply."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    migrations.upgrade(engine, "0001")
    naive = engine.dialect.name == "sqlite"
    at = T0.replace(tzinfo=None) if naive else T0
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO batches (batch_id, phase, created_at, created_by, "
                "rollout_fingerprint, snapshot_fingerprint, inputs_json, size, status, updated_at) "
                "VALUES ('p1-0001', 1, :at, 'olduser', 'r1', 's1', :inputs, 3, 'applying', :at)"
            ),
            {"at": at, "inputs": '{"rollout": "r1", "snapshot": "s1"}'},
        )
        for sid, state in (("sub_a", "applied"), ("sub_b", "planned"), ("sub_c", "failed")):
            conn.execute(
                sa.text(
                    "INSERT INTO batch_subscriptions (batch_id, subscription_id, customer_id, state, "
                    "customer_fingerprint, paid_through, error, updated_at) "
                    "VALUES ('p1-0001', :sid, 'cus_1', :state, 'fp', :at, :err, :at)"
                ),
                {
                    "sid": sid,
                    "state": state,
                    "at": at,
                    "err": "boom" if state == "failed" else None,
                },
            )
            conn.execute(
                sa.text(
                    "INSERT INTO audit_log (at, actor, action, batch_id, subscription_id, "
                    "from_state, to_state) VALUES (:at, 'olduser', 'plan', 'p1-0001', :sid, NULL, 'planned')"
                ),
                {"at": at, "sid": sid},
            )
        conn.execute(
            sa.text(
                "INSERT INTO target_objects (batch_id, op_key, kind, subscription_id, target_id, "
                "idempotency_key, created_at) VALUES ('p1-0001', 'customer:cus_1', 'customer', "
                "NULL, 'cus_T1', 'idem', :at)"
            ),
            {"at": at},
        )
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == "0001"
        assert "gate_verdict" not in {c["name"] for c in sa.inspect(conn).get_columns("batches")}
    engine.dispose()


def test_a_ledger_written_at_0001_is_upgraded_and_keeps_its_rows(ledger_url):
    _write_as_release_0001(ledger_url)
    with open_ledger(ledger_url, actor="newuser") as ledger:
        assert ledger.revision == migrations.head_revision() == "0005"
        info = ledger.batch("p1-0001")
        assert (info.status, info.size, info.created_by) == ("applying", 3, "olduser")
        assert info.created_at == T0 and info.gate_verdict is None
        assert info.fingerprints == {"rollout": "r1", "snapshot": "s1"}
        subs = ledger.subscriptions("p1-0001").set_index("subscription_id")
        assert subs["state"].to_dict() == {
            "sub_a": "applied",
            "sub_b": "planned",
            "sub_c": "failed",
        }
        assert subs.loc["sub_c", "error"] == "boom"
        assert subs.loc["sub_a", "paid_through"] == pd.Timestamp(T0)
        assert ledger.object_id("p1-0001", "customer:cus_1") == "cus_T1"
        assert len(ledger.log("p1-0001")) == 3
        # the old rows work with the new release
        assert ledger.taken_subscriptions() == {"sub_a", "sub_b", "sub_c"}
        with pytest.raises(SubscriptionTakenError):
            ledger.create_batch(1, plan_frame(["sub_b"]), FINGERPRINTS)
        assert ledger.create_batch(1, plan_frame(["sub_d"]), FINGERPRINTS) == "p1-0002"
        ledger.transition("p1-0001", ["sub_b"], "applied")
        ledger.transition("p1-0001", ["sub_c"], "planned")
        assert ledger.record_object("p1-0001", "customer:cus_1", "customer", "cus_T1") is False
        ledger.set_batch_status("p1-0001", "failed")
        ledger.record_gate("p1-0001", "pass")
        assert ledger.batch("p1-0001").gate_open
    # opening again is a no-op
    with open_ledger(ledger_url) as again:
        assert again.revision == "0005" and len(again.batches()) == 2


def _write_at_0004(url: str) -> None:
    """A ledger as the release at schema 0004 left it: two batches whose inputs are only in
    their plan rows of the audit log (JSON), one of them planned before that was recorded."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    migrations.upgrade(engine, "0004")
    at = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    detail = {
        "as_of": "2026-01-01T00:00:00+00:00",
        "snapshot_dir": "/data/snap",
        "rollout_path": "/rules/rollout.yaml",
        "policy_path": None,
        "out_dir": "/work/batches/p2-0001",
        "size": 1,
    }
    with engine.begin() as conn:
        for batch_id, phase in (("p2-0001", 2), ("p1-0001", 1)):
            conn.execute(
                sa.text(
                    "INSERT INTO batches (batch_id, phase, created_at, created_by, inputs_json, "
                    "size, status, updated_at, gate_verdict) "
                    "VALUES (:b, :p, :at, 'olduser', :inputs, 1, 'gated', :at, 'pass')"
                ),
                {"b": batch_id, "p": phase, "at": at, "inputs": '{"rollout": "r1"}'},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO batch_subscriptions (batch_id, subscription_id, customer_id, "
                    "state, updated_at) VALUES (:b, :s, 'cus_1', 'planned', :at)"
                ),
                {"b": batch_id, "s": f"sub_{batch_id}", "at": at},
            )
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (at, actor, action, batch_id, subscription_id, from_state, "
                "to_state, detail_json) VALUES (:at, 'olduser', 'plan', 'p2-0001', NULL, NULL, "
                "'planned', :detail)"
            ),
            {"at": at, "detail": json.dumps(detail)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (at, actor, action, batch_id, subscription_id, from_state, "
                "to_state, detail_json) VALUES (:at, 'olduser', 'plan', 'p1-0001', NULL, NULL, "
                "'planned', '{\"size\": 1}')"
            ),
            {"at": at},
        )
    engine.dispose()


def test_a_ledger_written_at_0004_gets_its_batch_inputs_as_columns(ledger_url):
    """Revision 0005 copies each batch's inputs from its plan row of the audit log."""
    _write_at_0004(ledger_url)
    with open_ledger(ledger_url) as ledger:
        assert ledger.revision == "0005"
        planned = ledger.batch("p2-0001").planned_from
        assert planned is not None
        assert planned.as_of == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        assert (planned.snapshot_dir, planned.rollout_path) == ("/data/snap", "/rules/rollout.yaml")
        assert (planned.policy_path, planned.out_dir) == (None, "/work/batches/p2-0001")
        assert ledger.batch("p1-0001").planned_from is None  # nothing recorded to copy
        assert ledger.batch("p2-0001").gate_open  # the other columns kept
        assert len(ledger.subscriptions("p2-0001")) == 1


def test_the_migrated_schema_is_the_declared_one(ledger_url):
    with open_ledger(ledger_url):
        pass
    engine = sa.create_engine(ledger_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []
        if conn.dialect.name in ("sqlite", "postgresql"):
            names = {i["name"] for i in sa.inspect(conn).get_indexes("batch_subscriptions")}
            assert "ux_batch_subscriptions_live" in names
    engine.dispose()


def test_the_database_refuses_a_subscription_in_two_live_batches(ledger_url):
    with open_ledger(ledger_url) as ledger:
        first = ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    engine = sa.create_engine(ledger_url)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO batches (batch_id, phase, created_at, created_by, inputs_json, size, "
                "status, updated_at) VALUES ('x', 1, :at, 'u', '{}', 1, 'planned', :at)"
            ),
            {"at": T0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO batch_subscriptions (batch_id, subscription_id, customer_id, state, "
                "updated_at) VALUES ('x', 'a', 'c', 'planned', :at)"
            ),
            {"at": T0},
        )
    engine.dispose()
    with open_ledger(ledger_url) as ledger:
        ledger.transition(first, ["a"], "rolled_back")
        assert ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS) == "p1-0002"


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as ledger:
        ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    engine = sa.create_engine(url)
    migrations.downgrade(engine, "0001")
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == "0001"
        assert "gate_at" not in {c["name"] for c in sa.inspect(conn).get_columns("batches")}
    migrations.downgrade(engine, "base")
    with engine.connect() as conn:
        assert "batches" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    with open_ledger(url) as ledger:
        assert ledger.revision == "0005" and ledger.batches().empty


def test_a_ledger_from_a_newer_release_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(url).close()
    with sqlite3.connect(tmp_path / "ledger.db") as raw:
        raw.execute(f"UPDATE {VERSION_TABLE} SET version_num = '0099'")
    with pytest.raises(LedgerError, match="revision 0099, newer than this shadowbill"):
        open_ledger(url)


def test_the_default_ledger_is_a_sqlite_file_in_dot_shadowbill(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(URL_ENV, raising=False)
    with open_ledger() as ledger:
        assert ledger.url == DEFAULT_URL
        ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
    db = tmp_path / ".shadowbill" / "ledger.db"
    assert db.is_file()
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    monkeypatch.setenv(URL_ENV, f"sqlite:///{tmp_path / 'elsewhere.db'}")
    with open_ledger() as ledger:
        assert ledger.url.endswith("elsewhere.db") and ledger.batches().empty


def test_errors_mask_the_database_password():
    url = "postgresql+psycopg://bill:hunter2@127.0.0.1:1/ledger"
    with pytest.raises(LedgerError) as info:
        open_ledger(url)
    assert "hunter2" not in str(info.value)
    assert "postgresql+psycopg://bill:***@127.0.0.1:1/ledger" in str(info.value)
    with pytest.raises(LedgerError, match="not a database URL"):
        open_ledger("not a url")


def test_an_in_memory_ledger_works_from_threads():
    import threading

    with open_ledger("sqlite://") as ledger:
        batch = ledger.create_batch(1, plan_frame(["a"]), FINGERPRINTS)
        threads = [
            threading.Thread(
                target=lambda w=w: [
                    ledger.record_object(batch, f"k{w}-{i}", "customer", f"c{w}-{i}")
                    for i in range(20)
                ]
            )
            for w in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(ledger.objects(batch)) == 80


def test_the_alembic_command_line_migrates_a_ledger(tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {ALEMBIC_DIR}\npath_separator = os\n")
    db = tmp_path / "cli.db"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ini),
            "-x",
            f"url=sqlite:///{db}",
            "upgrade",
            "head",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with open_ledger(f"sqlite:///{db}") as ledger:
        assert ledger.revision == "0005"


def test_the_revisions_ship_inside_the_package():
    assert ALEMBIC_DIR.is_dir() and Path(ALEMBIC_DIR, "env.py").is_file()
    revisions = {s.revision for s in migrations.script_directory().walk_revisions()}
    assert revisions == {"0001", "0002", "0003", "0004", "0005"}


def test_opening_a_new_ledger_from_several_places_at_once_migrates_it_once(ledger_url):
    import threading

    errors: list[BaseException] = []
    revisions: list[str | None] = []

    def open_it() -> None:
        try:
            with open_ledger(ledger_url) as ledger:
                revisions.append(ledger.revision)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "opening the ledger hung"
    assert errors == [] and revisions == [migrations.head_revision()] * 4


def test_a_ledger_at_0002_with_rows_gets_the_lease_columns_empty(ledger_url):
    with open_ledger(ledger_url) as ledger:
        batch = ledger.create_batch(1, plan_frame(["a", "b"]), FINGERPRINTS)
        ledger.record_gate(batch, "pass")
    engine = sa.create_engine(ledger_url)
    migrations.downgrade(engine, "0002")
    with engine.connect() as conn:
        assert "lease_holder" not in {c["name"] for c in sa.inspect(conn).get_columns("batches")}
    engine.dispose()
    with open_ledger(ledger_url) as ledger:
        assert ledger.revision == migrations.head_revision()
        assert ledger.batch(batch).gate_open and ledger.lease(batch) is None
        assert set(ledger.subscriptions(batch)["subscription_id"]) == {"a", "b"}
        assert ledger.acquire_lease(batch, "me").holder == "me"
