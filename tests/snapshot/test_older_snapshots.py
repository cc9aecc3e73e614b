"""A snapshot written before optional canonical columns were added is still read (as nulls)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from extract_cases import BASE_ROWS, write_folder

from shadowbill.errors import SnapshotError
from shadowbill.extract.run import extract
from shadowbill.snapshot.io import file_sha256, read_snapshot

ADDED_LATER = ["timezone", "stripe_customer_id", "address_line1", "address_city"]


def _rewrite_customers(snap: Path, drop: list[str]) -> None:
    """Rewrite customers.parquet without ``drop`` and fix its hash in the manifest."""
    path = snap / "customers.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([c for c in drop if c in table.column_names]), path)
    manifest = json.loads((snap / "manifest.json").read_text())
    manifest["tables"]["customers"]["sha256"] = file_sha256(path)
    (snap / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    source = write_folder(tmp_path / "source", BASE_ROWS)
    return extract(str(source), None, tmp_path / "snap", progress=False, layout="single").out_dir


def test_missing_optional_columns_read_as_nulls(snapshot: Path) -> None:
    _rewrite_customers(snapshot, ADDED_LATER)
    customers = read_snapshot(snapshot)["customers"]
    assert len(customers) == len(BASE_ROWS["customers"])
    assert customers[[c for c in ADDED_LATER if c in customers.columns]].isna().all().all()


def test_a_missing_required_column_is_still_refused(snapshot: Path) -> None:
    _rewrite_customers(snapshot, ["country"])
    with pytest.raises(SnapshotError, match="schema differs"):
        read_snapshot(snapshot)
