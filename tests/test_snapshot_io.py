"""Snapshot folders: Parquet round trip with pinned schemas, manifest counts, hash checks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from shadowbill.errors import SnapshotError
from shadowbill.snapshot_io import (
    TableCounts,
    mask_password,
    read_snapshot,
    snapshot_fingerprint,
    write_snapshot,
)
from shadowbill.tables import QUARANTINE, TABLES, Snapshot, empty_frame, pandas_dtype


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


def test_round_trip_keeps_values_and_dtypes(snapshot, tmp_path):
    manifest = write_snapshot(snapshot, tmp_path / "snap", source="customers.csv folder")
    assert manifest.name == "manifest.json"
    back = read_snapshot(tmp_path / "snap")
    for name, table in TABLES.items():
        frame = back[name]
        assert list(frame.columns) == table.column_names
        for col in table.columns:
            assert str(frame[col.name].dtype) == pandas_dtype(col.type), (name, col.name)
        pd.testing.assert_frame_equal(frame, snapshot[name].reset_index(drop=True))
    pd.testing.assert_frame_equal(back.quarantine, snapshot.quarantine)
    assert back.manifest["tables"]["customers"] == {
        "file": "customers.parquet",
        "rows_in": 3,
        "rows_out": 2,
        "quarantined": 1,
        "sha256": back.manifest["tables"]["customers"]["sha256"],
    }
    assert back.manifest["quarantine"]["by_reason"] == {"unknown_currency": 1}
    assert back.manifest["shadowbill_version"] and back.manifest["format_version"] == 1
    assert back.manifest["extracted_at"].endswith("Z")


def test_files_have_the_pinned_arrow_schema(snapshot, tmp_path):
    write_snapshot(snapshot, tmp_path, source="x")
    for name, table in TABLES.items():
        schema = pq.read_schema(tmp_path / f"{name}.parquet")
        assert schema.equals(table.arrow_schema, check_metadata=False)
        assert not schema.metadata or b"pandas" not in schema.metadata
    assert pq.read_schema(tmp_path / "quarantine.parquet").equals(
        QUARANTINE.arrow_schema, check_metadata=False
    )


def test_a_changed_file_is_refused_by_name(snapshot, tmp_path):
    write_snapshot(snapshot, tmp_path, source="x")
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
    write_snapshot(snapshot, tmp_path, source="x")
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


def test_fingerprint_names_the_data_not_the_moment(snapshot, tmp_path):
    write_snapshot(snapshot, tmp_path / "a", source="one")
    write_snapshot(snapshot, tmp_path / "b", source="two")
    assert snapshot_fingerprint(tmp_path / "a") == snapshot_fingerprint(tmp_path / "b")
    snapshot.tables["customers"].loc[1, "name"] = "Kabu KK"
    write_snapshot(snapshot, tmp_path / "c", source="one")
    assert snapshot_fingerprint(tmp_path / "c") != snapshot_fingerprint(tmp_path / "a")


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
