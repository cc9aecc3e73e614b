"""Streaming extraction into a bucketed snapshot gives exactly what one validation in memory gives.

Every comparison extracts the same source twice: ``single`` (everything validated at once,
one file per table) and ``buckets`` (spilled by customer bucket, validated group by group,
``group_rows=1`` so that nearly every bucket is its own group). Kept rows, quarantined rows
with their reasons and sentences, and counts must be identical.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from extract_cases import BASE_ROWS, Rows, write_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowbill.demo.generate import DemoResult, generate
from shadowbill.extract.quarantine import stage
from shadowbill.extract.run import SPILL_DIR, ExtractResult, extract
from shadowbill.extract.spill import TableSpill, key_hash, plan_groups
from shadowbill.extract.validate import check_types
from shadowbill.snapshot.buckets import SHARED_TABLES, snapshot_partition
from shadowbill.snapshot.io import read_snapshot, snapshot_buckets_present
from shadowbill.snapshot.partitions import BUCKETS, bucket_of_id
from shadowbill.snapshot.tables import TABLES, Snapshot

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

Both = tuple[ExtractResult, Snapshot, ExtractResult, Snapshot]


def _in_key_order(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame.sort_values(list(TABLES[name].key), kind="stable", ignore_index=True)


def assert_same(single: Snapshot, buckets: Snapshot) -> None:
    """Same kept rows per table (compared in key order), same quarantine in the same order."""
    for name in TABLES:
        pd.testing.assert_frame_equal(
            _in_key_order(buckets[name], name), _in_key_order(single[name], name), obj=name
        )
    pd.testing.assert_frame_equal(buckets.quarantine, single.quarantine, obj="quarantine")
    one, many = dict(single.manifest), dict(buckets.manifest)  # JSON as read
    for name in TABLES:
        for count in ("rows_in", "rows_out", "quarantined"):
            assert many["tables"][name][count] == one["tables"][name][count], (name, count)
    assert many["quarantine"]["by_reason"] == one["quarantine"]["by_reason"]


def extract_both(source: str, spec: Path | None, out: Path, **kwargs: Any) -> Both:
    """Extract one source into a single and a bucketed snapshot; check they agree."""
    one = extract(source, spec, out / "single", progress=False, layout="single", **kwargs)
    kwargs.setdefault("group_rows", 1)
    many = extract(source, spec, out / "buckets", progress=False, **kwargs)
    single, buckets = read_snapshot(one.out_dir), read_snapshot(many.out_dir)
    assert single.manifest["format_version"] == 1 and buckets.manifest["format_version"] == 2
    assert_same(single, buckets)
    assert one.counts == many.counts
    assert one.quarantine_by_table == many.quarantine_by_table
    assert not (out / "buckets" / SPILL_DIR).exists()
    return one, single, many, buckets


@pytest.fixture
def both(tmp_path: Path) -> Callable[[Rows], Both]:
    def run(rows: Rows) -> Both:
        folder = write_folder(tmp_path / "source", rows)
        return extract_both(str(folder), None, tmp_path)

    return run


def reasons(snapshot: Snapshot, table: str) -> list[str]:
    q = snapshot.quarantine
    return q.loc[q["table"] == table, "reason"].tolist()


def test_the_base_company_lands_in_its_customers_buckets(both, base_rows):
    assert len({bucket_of_id(c) for c in ("C1", "C2", "C3")}) == 3  # three groups
    _, _, result, snap = both(base_rows)
    assert snap.quarantine.empty and result.layout == "buckets"
    files = snap.manifest["tables"]["invoice_lines"]["files"]
    assert [f["bucket"] for f in files] == sorted(bucket_of_id(c) for c in ("C1", "C2", "C3"))
    assert sum(f["rows"] for f in files) == 6
    v1 = snap["invoice_lines"].set_index("line_id")
    assert v1.loc["L1", "amount"] == 11700


def test_a_duplicate_id_across_customers_is_quarantined_like_in_one_piece(both, base_rows):
    # S2 (customer C2) is given the id S1 of C1's subscription: two buckets hold "S1".
    base_rows["subscriptions"][1]["subscription_id"] = "S1"
    # a line of C2's invoice reuses the id of a line of C1's invoice
    base_rows["invoice_lines"][3]["line_id"] = "L1"
    *_, snap = both(base_rows)
    assert reasons(snap, "subscriptions") == ["duplicate_key", "duplicate_key"]
    details = snap.quarantine.query("table == 'subscriptions'")["detail"].tolist()
    assert all("key appears 2 times" in d for d in details)
    lines = snap.quarantine.query("table == 'invoice_lines' and reason == 'duplicate_key'")
    assert len(lines) == 2
    assert snap["subscriptions"]["subscription_id"].tolist() == ["S3"]


def test_duplicate_invoices_across_customers_take_their_lines(both, base_rows):
    base_rows["invoices"][1]["invoice_id"] = "V1"  # C2's invoice V2 becomes a second V1
    *_, snap = both(base_rows)
    assert reasons(snap, "invoices") == ["duplicate_key", "duplicate_key"]
    q = snap.quarantine.query("table == 'invoice_lines'")
    lines = dict(zip(q["source_ref"], q["reason"], strict=True))
    assert lines == {
        "invoice_lines.csv row 1": "parent_quarantined",  # of V1, whose copies are quarantined
        "invoice_lines.csv row 2": "parent_quarantined",
        "invoice_lines.csv row 3": "parent_quarantined",
        "invoice_lines.csv row 4": "dangling_foreign_key",  # of V2, which is gone
        "invoice_lines.csv row 5": "dangling_foreign_key",
    }


def test_an_item_id_shared_by_two_customers_overlaps_across_buckets(both, base_rows):
    base_rows["subscription_items"][2]["item_id"] = "I1"  # C2's item reuses C1's item id
    *_, snap = both(base_rows)
    assert reasons(snap, "subscription_items") == ["overlapping_history"] * 3


def test_an_item_id_shared_without_overlap_is_kept(both, base_rows):
    base_rows["subscription_items"][2]["item_id"] = "I1"
    base_rows["subscription_items"][2]["valid_from"] = "2023-01-01T00:00:00Z"
    base_rows["subscription_items"][2]["valid_to"] = "2023-06-01T00:00:00Z"
    *_, snap = both(base_rows)
    assert snap.quarantine.empty


@pytest.mark.parametrize("parent_state", ["kept", "quarantined", "duplicated", "missing"])
def test_an_invoice_naming_another_customers_subscription(both, base_rows, parent_state):
    # C2's invoice V2 names C1's subscription S1: invoice and subscription are in two buckets.
    base_rows["invoices"][1]["subscription_id"] = "S1"
    if parent_state == "quarantined":
        base_rows["subscriptions"][0]["status"] = "zombie"
    elif parent_state == "duplicated":
        base_rows["subscriptions"][2]["subscription_id"] = "S1"
    elif parent_state == "missing":
        base_rows["invoices"][1]["subscription_id"] = "S9"
    *_, snap = both(base_rows)
    got = reasons(snap, "invoices")
    expected = {
        "kept": [],
        "quarantined": ["parent_quarantined", "parent_quarantined"],
        # V1 and V2 name the quarantined copies of S1; V3's S3 is gone (renamed S1)
        "duplicated": ["parent_quarantined", "parent_quarantined", "dangling_foreign_key"],
        "missing": ["dangling_foreign_key"],
    }[parent_state]
    assert sorted(got) == sorted(expected)
    if parent_state == "quarantined":
        detail = snap.quarantine.query("table == 'invoices'")["detail"].tolist()
        assert any("invoice_id='V2'" in d and "(invalid_enum)" in d for d in detail)


def test_bad_rows_of_every_kind(both, base_rows):
    base_rows["customers"][2]["currency"] = "ZZZ"  # cascades through C3's rows
    base_rows["usage"].append(dict(base_rows["usage"][0]))  # a duplicate within a customer
    base_rows["invoice_lines"][4]["kind"] = "vat"
    base_rows["discounts"][0]["subscription_id"] = "S7"  # dangling
    base_rows["subscription_items"][0]["quantity"] = "-1"
    *_, snap = both(base_rows)
    assert set(snap.quarantine["reason"]) >= {
        "unknown_currency",
        "parent_quarantined",
        "duplicate_key",
        "invalid_enum",
        "dangling_foreign_key",
        "negative_value",
        "invoice_lines_mismatch",
    }


# ------------------------------------------------------------------ random input ----

# Ids that hook random rows onto the base company's customers, which lie in different buckets.
_IDS = {
    "customer_id": ["C1", "C2", "C3", "A"],
    "subscription_id": ["S1", "S2", "S3", "A"],
    "item_id": ["I1", "I2", "I3", "A"],
    "discount_id": ["D1", "A"],
    "invoice_id": ["V1", "V2", "V3", "A"],
    "line_id": ["L1", "L4", "L6", "A"],
}
_TS = ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", "soon", None]


def _value(table: str, column: str) -> st.SearchStrategy[str | None]:
    col = TABLES[table].column(column)
    if column in _IDS:
        return st.sampled_from([*_IDS[column], None])
    if col.enum is not None:
        return st.sampled_from([*col.enum[:3], "bogus", None])
    if column == "currency":
        return st.sampled_from(["USD", "JPY", "XXX", None])
    if column in ("percent_off", "percentage", "unit_amount_decimal"):
        return st.sampled_from(["10", "12.50", "ten", None])
    kind = str(col.type)
    if kind.startswith("timestamp"):
        return st.sampled_from(_TS)
    if kind == "int64":
        return st.sampled_from(["0", "1", "11800", "-1", "x", None])
    if kind == "bool":
        return st.sampled_from(["true", "false", "maybe"])
    return st.sampled_from(["x", "y", None])


@st.composite
def messy_rows(draw: st.DrawFn) -> Rows:
    """The base company with a few cells changed (often to another customer's ids) and extra rows."""
    rows: Rows = copy.deepcopy(BASE_ROWS)
    names = sorted(TABLES)
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(names))
        row = draw(st.sampled_from(rows[name]))
        column = draw(st.sampled_from(TABLES[name].column_names))
        row[column] = draw(_value(name, column)) or ""
    for name, table in TABLES.items():
        for _ in range(draw(st.integers(0, 2))):
            row = dict(draw(st.sampled_from(BASE_ROWS[name])))  # a copy of a row, changed
            for column in draw(st.lists(st.sampled_from(table.column_names), max_size=3)):
                row[column] = draw(_value(name, column)) or ""
            rows[name].append(row)
    return rows


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(messy_rows())
def test_random_messy_sources_give_the_same_snapshot(tmp_path_factory, rows):
    out = tmp_path_factory.mktemp("messy")
    folder = write_folder(out / "source", rows)
    extract_both(str(folder), None, out)


# ------------------------------------------------------------------ demo database ----


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """The demo company with rows broken across customers, read from its SQLite database."""
    demo = generate(tmp_path_factory.mktemp("demo") / "legacy.db", customers=120, months=3, seed=5)
    with sqlite3.connect(demo.db_path) as db:
        accounts = [r[0] for r in db.execute("SELECT acct_no FROM accounts ORDER BY acct_no")]
        bills = db.execute("SELECT rowid, bill_no, acct_no FROM bills ORDER BY rowid").fetchall()
        # an invoice charged to another customer than its subscription's
        db.execute("UPDATE bills SET acct_no = ? WHERE rowid = ?", (accounts[1], bills[0][0]))
        # and one naming a subscription that will be quarantined
        plan = db.execute("SELECT plan_ref FROM bills WHERE rowid = ?", (bills[5][0],)).fetchone()
        db.execute("UPDATE plans_active SET plan_state = 'LOST' WHERE plan_ref = ?", plan)
        db.execute("UPDATE bills SET acct_no = ? WHERE rowid = ?", (accounts[2], bills[5][0]))
        # a second copy of an invoice under another customer
        db.execute("DROP INDEX bills_no")
        db.execute(
            "INSERT INTO bills SELECT bill_no, plan_ref, ?, period_from, period_to, cur, subtotal,"
            " discount_amt, tax_amt, total_amt, bill_status, issued_epoch FROM bills WHERE rowid = ?",
            (accounts[3], bills[10][0]),
        )
        # a line id used on invoices of two customers
        items = db.execute("SELECT rowid, item_no FROM bill_items ORDER BY rowid").fetchall()
        db.execute("UPDATE bill_items SET item_no = ? WHERE rowid = ?", (items[0][1], items[-1][0]))
        # an item history continued under another customer's plan, overlapping
        lines = db.execute("SELECT line_ref FROM plan_lines ORDER BY hist_id").fetchall()
        db.execute(
            "UPDATE plan_lines SET line_ref = ? WHERE hist_id = (SELECT MAX(hist_id) FROM plan_lines)",
            lines[0],
        )
        # and plain bad rows
        db.execute("UPDATE accounts SET channel = 'FAX' WHERE acct_no = ?", (accounts[4],))
        db.execute("UPDATE meter_readings SET units = -5 WHERE reading_id % 97 = 0")
    return demo


def test_demo_with_broken_rows_gives_the_same_snapshot(planted, tmp_path):
    *_, snap = extract_both(
        f"sqlite:///{planted.db_path}", planted.spec_path, tmp_path, chunk_size=700, group_rows=400
    )
    found = set(snap.quarantine["reason"])
    assert {"duplicate_key", "overlapping_history", "parent_quarantined"} <= found
    assert {"negative_value", "unmapped_value"} <= found
    assert len(snap.quarantine) > 20


def test_partitions_of_the_extracted_snapshot(planted, tmp_path):
    out = tmp_path / "snap"
    extract(f"sqlite:///{planted.db_path}", planted.spec_path, out, progress=False)
    whole = read_snapshot(out)
    present = snapshot_buckets_present(out)
    assert present == sorted(present) and len(present) > 50
    for partitions in (1, 2, 3, 7):
        parts = [read_snapshot(out, partition=k, partitions=partitions) for k in range(partitions)]
        for k, part in enumerate(parts):
            expected = snapshot_partition(whole, k, partitions)
            for name in TABLES:
                pd.testing.assert_frame_equal(part[name], expected[name], obj=name)
            pd.testing.assert_frame_equal(part.quarantine, whole.quarantine)
        for name in TABLES:
            if name in SHARED_TABLES:
                continue
            union = pd.concat([p[name] for p in parts], ignore_index=True)
            pd.testing.assert_frame_equal(
                _in_key_order(union, name), _in_key_order(whole[name], name), obj=name
            )


# ------------------------------------------------------------------ the machinery ----


def test_spill_reads_buckets_back_in_source_order(tmp_path):
    table = TABLES["customers"]
    spill = TableSpill(tmp_path / "spill", table)
    rows = pd.DataFrame(
        {
            c.name: pd.Series([f"{c.name}{i}" for i in range(10)], dtype="string")
            for c in table.columns
        }
    )
    staged = stage(rows, table)
    check_types(staged, table)  # spilled rows are typed: these cells become wrong_type
    buckets = np.array([5, 3, 5, 200, 3, 3, 0, 255, 5, 3])
    spill.append(staged.iloc[:6].reset_index(drop=True), buckets[:6])
    spill.append(staged.iloc[6:].reset_index(drop=True), buckets[6:])
    assert spill.rows == 10 and spill.rows_per_bucket[3] == 4
    got = spill.read(range(3, 6))
    assert got["_seq"].tolist() == [0, 1, 2, 4, 5, 8, 9]
    assert got["_bucket"].tolist() == [5, 3, 5, 3, 3, 5, 3]
    assert got["_ref"].tolist() == [f"customers row {i + 1}" for i in (0, 1, 2, 4, 5, 8, 9)]
    assert len(spill.read(range(BUCKETS))) == 10 and spill.read(range(6, 200)).empty


def test_bucket_groups_respect_the_row_budget():
    rows = np.zeros(BUCKETS, dtype=np.int64)
    rows[[0, 1, 2, 100, 101, 255]] = [4, 4, 4, 9, 1, 2]
    groups = plan_groups(rows, 8)
    assert groups[0] == range(0, 2) and range(2, 100) in groups
    assert [b for g in groups for b in g] == list(range(BUCKETS))  # every bucket, once, in order
    assert all(sum(rows[list(g)]) <= 8 or len([b for b in g if rows[b]]) == 1 for g in groups)
    assert plan_groups(rows, 10**9) == [range(BUCKETS)]


def test_stale_buckets_of_an_earlier_snapshot_are_removed(tmp_path, base_rows):
    folder = write_folder(tmp_path / "source", base_rows)
    out = tmp_path / "snap"
    extract(str(folder), None, out, progress=False)
    gone = bucket_of_id("C3")
    base_rows["customers"] = base_rows["customers"][:2]
    for name in ("subscriptions", "invoices"):
        base_rows[name] = [r for r in base_rows[name] if r["customer_id"] != "C3"]
    shutil.rmtree(folder)
    folder = write_folder(tmp_path / "source", base_rows)
    extract(str(folder), None, out, progress=False)
    assert not (out / "customers" / f"b{gone:03d}.parquet").exists()
    assert gone not in snapshot_buckets_present(out)
    assert len(read_snapshot(out)["customers"]) == 2


def test_a_failed_extraction_leaves_no_spill_and_no_folder(tmp_path, base_rows):
    folder = write_folder(tmp_path / "source", base_rows)
    (folder / "usage.csv").write_text("subscription_id,qty\nS1,3\n")
    out = tmp_path / "snap"
    with pytest.raises(Exception, match="unknown column 'qty'"):
        extract(str(folder), None, out, progress=False)
    assert not out.exists()


def test_key_hashes_depend_on_the_value_only():
    values = pa.array(["abc", "", "x", "abc", "é", "ab", "c"])
    h = key_hash([values])
    assert h[0] == h[3] and len(set(h.tolist())) == 6
    assert key_hash([values.slice(3)]).tolist() == h[3:].tolist()  # offset buffers
    assert key_hash([pa.array([""] * 3)]).tolist() == [h[1]] * 3  # no data buffer at all
    assert len(key_hash([pa.array([], type=pa.string())])) == 0
    stamps = pa.array([0, 0, 1], type=pa.timestamp("us", tz="UTC"))
    pairs = key_hash([pa.array(["a", "a", "a"]), stamps])
    assert pairs[0] == pairs[1] != pairs[2]
    assert (
        key_hash([pa.array(["ab", "a"]), pa.array(["c", "bc"])]).tolist()[0]
        != key_hash([pa.array(["a"]), pa.array(["bc"])]).tolist()[0]
    )
