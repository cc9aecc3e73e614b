"""Snapshot folders: Parquet round trip with pinned schemas, manifest counts, hash checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shadowbill.errors import InputError, SnapshotError
from shadowbill.snapshot.buckets import SHARED_TABLES, snapshot_partition
from shadowbill.snapshot.io import (
    TableCounts,
    bucket_file,
    mask_password,
    read_quarantine,
    read_snapshot,
    scan_columns,
    snapshot_buckets_present,
    snapshot_fingerprint,
    write_snapshot,
)
from shadowbill.snapshot.partitions import BUCKETS, bucket_of_id
from shadowbill.snapshot.tables import QUARANTINE, TABLES, Snapshot, empty_frame, pandas_dtype


@pytest.fixture
def snapshot() -> Snapshot:
    """Two customers, one subscription, one quarantined row; other tables empty."""
    customers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "name": ["Acme", "Kabu"],
            "email": [None, "k@example.com"],
            "country": ["US", "JP"],
            "currency": ["USD", "JPY"],
            "segment": ["self_serve", "sales"],
            "created_at": pd.to_datetime(
                ["2024-01-01T00:00:00Z", "2024-01-02T03:04:05.123456Z"], format="ISO8601"
            ),
            "tax_exempt": [False, True],
            "timezone": [None, "Asia/Tokyo"],
            "stripe_customer_id": ["cus_Acme", None],
            "address_line1": ["1 Main St", None],
            "address_city": ["Austin", None],
            "address_postal_code": ["78701", None],
            "address_state": ["TX", None],
        }
    ).astype({c.name: pandas_dtype(c.type) for c in TABLES["customers"].columns})
    subs = empty_frame(TABLES["subscriptions"])
    quarantine = pd.DataFrame(
        {
            "table": ["customers"],
            "source_ref": ["customers.csv row 3"],
            "reason": ["unknown_currency"],
            "detail": ["customers customer_id='C3': currency 'XYZ' is not an ISO 4217 code"],
            "row": ['{"customer_id":"C3"}'],
        },
        dtype="string",
    )
    snap = Snapshot.from_frames({"customers": customers, "subscriptions": subs})
    snap.quarantine = quarantine
    return snap


@pytest.mark.parametrize("layout", ["single", "buckets"])
def test_round_trip_keeps_values_and_dtypes(snapshot, tmp_path, layout):
    manifest = write_snapshot(
        snapshot, tmp_path / "snap", source="customers.csv folder", layout=layout
    )
    assert manifest.name == "manifest.json"
    back = read_snapshot(tmp_path / "snap")
    for name, table in TABLES.items():
        frame = back[name]
        assert list(frame.columns) == table.column_names
        for col in table.columns:
            assert str(frame[col.name].dtype) == pandas_dtype(col.type), (name, col.name)
    # a bucketed snapshot reads back in bucket order; C1 and C2 lie in buckets 31 and 239
    assert [bucket_of_id("C1"), bucket_of_id("C2")] == [31, 239]
    pd.testing.assert_frame_equal(back["customers"], snapshot["customers"])
    pd.testing.assert_frame_equal(back.quarantine, snapshot.quarantine)
    counts = {"rows_in": 3, "rows_out": 2, "quarantined": 1}
    entry = back.manifest["tables"]["customers"]
    if layout == "single":
        assert entry == {"file": "customers.parquet", **counts, "sha256": entry["sha256"]}
        assert back.manifest["format_version"] == 1 and "layout" not in back.manifest
    else:
        files = entry.pop("files")
        assert entry == {**counts, "sha256": entry["sha256"]}
        assert [(f["bucket"], f["file"], f["rows"]) for f in files] == [
            (31, "customers/b031.parquet", 1),
            (239, "customers/b239.parquet", 1),
        ]
        assert back.manifest["format_version"] == 2 and back.manifest["buckets"] == BUCKETS
        assert back.manifest["layout"] == "buckets"
        assert back.manifest["tables"]["subscriptions"]["files"] == []  # empty: no file
        assert back.manifest["tables"]["tax_rates"]["file"] == "tax_rates.parquet"
    assert back.manifest["quarantine"]["by_reason"] == {"unknown_currency": 1}
    assert back.manifest["shadowbill_version"]
    assert back.manifest["extracted_at"].endswith("Z")


@pytest.mark.parametrize("layout", ["single", "buckets"])
def test_files_have_the_pinned_arrow_schema(snapshot, tmp_path, layout):
    write_snapshot(snapshot, tmp_path, source="x", layout=layout)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for name, table in TABLES.items():
        entry = manifest["tables"][name]
        for file in [f["file"] for f in entry["files"]] if "files" in entry else [entry["file"]]:
            schema = pq.read_schema(tmp_path / file)
            assert schema.equals(table.arrow_schema, check_metadata=False)
            assert not schema.metadata or b"pandas" not in schema.metadata
    assert pq.read_schema(tmp_path / "quarantine.parquet").equals(
        QUARANTINE.arrow_schema, check_metadata=False
    )


def test_a_changed_file_is_refused_by_name(snapshot, tmp_path):
    write_snapshot(snapshot, tmp_path, source="x", layout="single")
    other = snapshot.tables["customers"].iloc[:1]
    pq.write_table(
        pq.read_table(tmp_path / "customers.parquet").slice(0, len(other)),
        tmp_path / "customers.parquet",
    )
    with pytest.raises(SnapshotError, match=r"customers\.parquet: sha256 differs"):
        read_snapshot(tmp_path)
    with pytest.raises(SnapshotError, match=r"customers\.parquet: sha256 differs"):
        snapshot_fingerprint(tmp_path)


def test_missing_files_and_manifests(snapshot, tmp_path):
    with pytest.raises(SnapshotError, match=r"manifest\.json: missing"):
        read_snapshot(tmp_path)
    write_snapshot(snapshot, tmp_path, source="x", layout="single")
    (tmp_path / "usage.parquet").unlink()
    with pytest.raises(SnapshotError, match=r"usage\.parquet: listed in the manifest but missing"):
        read_snapshot(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match="format version 99"):
        read_snapshot(tmp_path)


def test_counts_must_be_conserved(snapshot, tmp_path):
    counts = {"customers": TableCounts(rows_in=5, rows_out=2, quarantined=1)}
    with pytest.raises(SnapshotError, match="table customers: counts do not add up"):
        write_snapshot(snapshot, tmp_path, source="x", counts=counts)
    assert not (tmp_path / "manifest.json").exists()


def test_required_values_cannot_be_written_empty(snapshot, tmp_path):
    snapshot.tables["customers"].loc[0, "name"] = pd.NA
    with pytest.raises(SnapshotError, match="required column name has empty values"):
        write_snapshot(snapshot, tmp_path, source="x")


def test_password_is_masked_in_the_manifest(snapshot, tmp_path):
    url = "postgresql+psycopg://billing:s3cr3t@db.internal:5432/legacy"
    write_snapshot(snapshot, tmp_path, source=url)
    text = (tmp_path / "manifest.json").read_text()
    assert "s3cr3t" not in text
    assert "postgresql+psycopg://billing:***@db.internal:5432/legacy" in text
    assert mask_password("see mysql://u:p@h/d and sqlite:///x.db") == (
        "see mysql://u:***@h/d and sqlite:///x.db"
    )


@pytest.mark.parametrize("layout", ["single", "buckets"])
def test_fingerprint_names_the_data_not_the_moment(snapshot, tmp_path, layout):
    write_snapshot(snapshot, tmp_path / "a", source="one", layout=layout)
    write_snapshot(snapshot, tmp_path / "b", source="two", layout=layout)
    assert snapshot_fingerprint(tmp_path / "a") == snapshot_fingerprint(tmp_path / "b")
    snapshot.tables["customers"].loc[1, "name"] = "Kabu KK"
    write_snapshot(snapshot, tmp_path / "c", source="one", layout=layout)
    assert snapshot_fingerprint(tmp_path / "c") != snapshot_fingerprint(tmp_path / "a")


def test_fingerprint_is_a_digest_of_every_listed_file(snapshot, tmp_path):
    write_snapshot(snapshot, tmp_path, source="x")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    files = {f["file"]: f["sha256"] for f in manifest["tables"]["customers"]["files"]}
    files |= {manifest["tables"][n]["file"]: manifest["tables"][n]["sha256"] for n in SHARED_TABLES}
    files[manifest["quarantine"]["file"]] = manifest["quarantine"]["sha256"]
    lines = "".join(f"{name}:{sha}\n" for name, sha in sorted(files.items()))
    assert snapshot_fingerprint(tmp_path) == hashlib.sha256(lines.encode()).hexdigest()


def test_extra_manifest_entries(snapshot, tmp_path: Path):
    write_snapshot(snapshot, tmp_path, source="x", extra={"source_name": "demo", "tables": "no"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["source_name"] == "demo"
    assert isinstance(manifest["tables"], dict)  # extra entries never replace the counts


def test_unwritable_folder_is_one_error(snapshot, tmp_path: Path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(SnapshotError, match=r"taken: cannot write the snapshot"):
        write_snapshot(snapshot, blocker, source="x")


# ------------------------------------------------------------ buckets and partitions ----


def _typed(name: str, rows: dict[str, list[object]]) -> pd.DataFrame:
    table = TABLES[name]
    frame = pd.DataFrame(
        {c: rows.get(c, [None] * len(next(iter(rows.values())))) for c in table.column_names}
    )
    for col in table.columns:
        if pandas_dtype(col.type).startswith("datetime"):
            frame[col.name] = pd.to_datetime(frame[col.name], utc=True).astype(
                "datetime64[us, UTC]"
            )
    return frame.astype({c.name: pandas_dtype(c.type) for c in table.columns})


@pytest.fixture
def company() -> Snapshot:
    """40 customers, each with a subscription, two items, usage, an invoice and two lines."""
    n = 40
    cus = [f"cus_{i:03d}" for i in range(n)]
    sub = [f"sub_{i:03d}" for i in range(n)]
    inv = [f"in_{i:03d}" for i in range(n)]
    day = ["2024-01-01T00:00:00Z"] * n
    end = ["2024-02-01T00:00:00Z"] * n
    frames = {
        "customers": _typed(
            "customers",
            {
                "customer_id": cus,
                "name": [f"Co {i}" for i in range(n)],
                "country": ["US"] * n,
                "currency": ["usd"] * n,
                "segment": ["sales"] * n,
                "created_at": day,
                "tax_exempt": [False] * n,
            },
        ),
        "subscriptions": _typed(
            "subscriptions",
            {
                "subscription_id": sub,
                "customer_id": cus,
                "status": ["active"] * n,
                "interval": ["month"] * n,
                "interval_count": [1] * n,
                "current_period_start": day,
                "current_period_end": end,
                "started_at": day,
                "currency": ["usd"] * n,
            },
        ),
        "subscription_items": _typed(
            "subscription_items",
            {
                "item_id": [f"si_{i:03d}_{k}" for i in range(n) for k in range(2)],
                "subscription_id": [s for s in sub for _ in range(2)],
                "price_id": ["pro"] * 2 * n,
                "quantity": [3] * 2 * n,
                "valid_from": day * 2,
            },
        ),
        "usage": _typed(
            "usage",
            {
                "subscription_id": sub,
                "meter": ["sms"] * n,
                "period_start": day,
                "period_end": end,
                "quantity": list(range(n)),
            },
        ),
        "invoices": _typed(
            "invoices",
            {
                "invoice_id": inv,
                "subscription_id": sub,
                "customer_id": cus,
                "period_start": day,
                "period_end": end,
                "currency": ["usd"] * n,
                "subtotal": [300] * n,
                "discount": [0] * n,
                "tax": [0] * n,
                "total": [300] * n,
                "status": ["paid"] * n,
                "issued_at": end,
            },
        ),
        "invoice_lines": _typed(
            "invoice_lines",
            {
                "line_id": [f"il_{i:03d}_{k}" for i in range(n) for k in range(2)],
                "invoice_id": [v for v in inv for _ in range(2)],
                "kind": ["recurring"] * 2 * n,
                "amount": [150] * 2 * n,
                "period_start": day * 2,
                "period_end": end * 2,
            },
        ),
        "tax_rates": _typed(
            "tax_rates",
            {
                "tax_rate_id": ["txr_1"],
                "percentage": ["20"],
                "inclusive": [False],
                "country": ["FR"],
            },
        ),
    }
    return Snapshot.from_frames(frames)


def _sorted(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame.sort_values(list(TABLES[name].key), ignore_index=True)


@pytest.mark.parametrize("layout", ["single", "buckets"])
@pytest.mark.parametrize("partitions", [1, 2, 3, 7])
def test_a_partition_read_is_the_partition_of_the_whole(company, tmp_path, layout, partitions):
    write_snapshot(company, tmp_path, source="x", layout=layout)
    whole = read_snapshot(tmp_path)
    parts = [read_snapshot(tmp_path, partition=k, partitions=partitions) for k in range(partitions)]
    for k, part in enumerate(parts):
        expected = snapshot_partition(whole, k, partitions)
        for name in TABLES:
            pd.testing.assert_frame_equal(part[name], expected[name], obj=name)
        pd.testing.assert_frame_equal(part.quarantine, whole.quarantine)
    for name in TABLES:
        union = pd.concat([p[name] for p in parts], ignore_index=True)
        if name in SHARED_TABLES:
            assert all(p[name].equals(whole[name]) for p in parts)
        else:
            pd.testing.assert_frame_equal(_sorted(union, name), _sorted(company[name], name))


def test_a_bucketed_snapshot_reads_in_bucket_order_then_frame_order(company, tmp_path):
    write_snapshot(company, tmp_path, source="x")
    back = read_snapshot(tmp_path)
    buckets = [bucket_of_id(c) for c in back["customers"]["customer_id"]]
    assert buckets == sorted(buckets)
    lines = back["invoice_lines"]
    owner = lines["invoice_id"].str.replace("in_", "cus_")
    assert [bucket_of_id(c) for c in owner] == sorted(bucket_of_id(c) for c in owner)
    assert snapshot_buckets_present(tmp_path) == sorted({bucket_of_id(c) for c in owner})
    write_snapshot(company, tmp_path / "v1", source="x", layout="single")
    assert snapshot_buckets_present(tmp_path / "v1") == snapshot_buckets_present(tmp_path)


def test_only_the_files_of_a_partition_are_read_and_checked(company, tmp_path):
    write_snapshot(company, tmp_path, source="x")
    victim = bucket_of_id("cus_000")
    path = tmp_path / bucket_file("invoices", victim)
    data = pq.read_table(path)
    pq.write_table(data.slice(0, 0), path)  # the invoices of one bucket vanish
    holding = victim % 4
    with pytest.raises(SnapshotError, match=rf"invoices/b{victim:03d}\.parquet: sha256 differs"):
        read_snapshot(tmp_path, partition=holding, partitions=4)
    with pytest.raises(SnapshotError, match="sha256 differs"):
        read_snapshot(tmp_path)
    with pytest.raises(SnapshotError, match="sha256 differs"):
        snapshot_fingerprint(tmp_path)
    other = read_snapshot(tmp_path, partition=(holding + 1) % 4, partitions=4)
    assert len(other["invoices"]) > 0
    path.unlink()
    with pytest.raises(SnapshotError, match="listed in the manifest but missing"):
        read_snapshot(tmp_path)


@pytest.mark.parametrize("layout", ["single", "buckets"])
def test_skipped_tables_are_not_read_and_come_back_empty(company, tmp_path, layout):
    write_snapshot(company, tmp_path, source="x", layout=layout)
    whole = read_snapshot(tmp_path, partition=1, partitions=3)
    if layout == "buckets":  # a skipped table's files are not even opened
        for file in (tmp_path / "invoice_lines").glob("*.parquet"):
            file.write_bytes(b"corrupt")
    lean = read_snapshot(tmp_path, partition=1, partitions=3, skip=("invoice_lines",))
    assert lean["invoice_lines"].empty
    assert list(lean["invoice_lines"].dtypes) == list(whole["invoice_lines"].dtypes)
    for name in set(TABLES) - {"invoice_lines"}:
        pd.testing.assert_frame_equal(lean[name], whole[name], obj=name)
    with pytest.raises(InputError, match="no snapshot table named bills"):
        read_snapshot(tmp_path, skip=("bills",))


@pytest.mark.parametrize("layout", ["single", "buckets"])
def test_scan_columns_reads_only_what_is_asked(company, tmp_path, layout):
    write_snapshot(company, tmp_path, source="x", layout=layout)
    got = scan_columns(tmp_path, "invoices", ["invoice_id", "period_start"])
    assert list(got.columns) == ["invoice_id", "period_start"]
    assert str(got["period_start"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_frame_equal(
        _sorted(got, "invoices"),
        _sorted(company["invoices"][["invoice_id", "period_start"]], "invoices"),
    )
    part = scan_columns(tmp_path, "invoices", ["invoice_id"], partition=1, partitions=3)
    expected = read_snapshot(tmp_path, partition=1, partitions=3)["invoices"][["invoice_id"]]
    pd.testing.assert_frame_equal(part, expected)
    with pytest.raises(InputError, match="no column"):
        scan_columns(tmp_path, "invoices", ["nope"])
    with pytest.raises(InputError, match="no canonical table"):
        scan_columns(tmp_path, "bills", ["invoice_id"])


def test_partition_arguments_are_checked(company, tmp_path):
    write_snapshot(company, tmp_path, source="x")
    with pytest.raises(InputError, match="partition must be between 0 and 2"):
        read_snapshot(tmp_path, partition=3, partitions=3)
    with pytest.raises(InputError, match="partitions must be between 1 and 256"):
        read_snapshot(tmp_path, partition=0, partitions=0)


def test_a_manifest_for_another_bucket_count_is_refused(company, tmp_path):
    write_snapshot(company, tmp_path, source="x")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["buckets"] = 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match="64 buckets"):
        read_snapshot(tmp_path)


def test_rewriting_a_folder_drops_the_other_layouts_files(company, tmp_path):
    write_snapshot(company, tmp_path, source="x")
    write_snapshot(company, tmp_path, source="x", layout="single")
    assert not list(tmp_path.glob("*/b*.parquet"))
    write_snapshot(company, tmp_path, source="x")
    assert not (tmp_path / "customers.parquet").exists()
    assert len(read_quarantine(tmp_path)) == 0
    assert len(read_snapshot(tmp_path)["customers"]) == 40
