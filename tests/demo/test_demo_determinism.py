"""The same seed gives the same legacy database, spec and errors; another seed does not."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from shadowbill.demo.generate import DemoResult, generate

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

TABLES = (
    "accounts",
    "plans_active",
    "plan_lines",
    "promo_grants",
    "meter_readings",
    "vat_rates",
    "bills",
    "bill_items",
)


def _contents(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {t: list(conn.execute(f"SELECT * FROM {t} ORDER BY rowid")) for t in TABLES}
    finally:
        conn.close()


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a" / "legacy.db", customers=150, months=6, seed=3)
    b = generate(tmp_path / "b" / "legacy.db", customers=150, months=6, seed=3)
    assert _contents(a.db_path) == _contents(b.db_path)
    assert a.errors_path.read_bytes() == b.errors_path.read_bytes()
    assert a.spec_path.read_bytes() == b.spec_path.read_bytes()
    assert a.table_counts == b.table_counts


def test_another_seed_gives_another_company(tmp_path: Path) -> None:
    a = generate(tmp_path / "a" / "legacy.db", customers=150, months=6, seed=3)
    b = generate(tmp_path / "b" / "legacy.db", customers=150, months=6, seed=4)
    ca, cb = _contents(a.db_path), _contents(b.db_path)
    for table in ("accounts", "plan_lines", "bills", "bill_items"):
        assert ca[table] != cb[table], table


def test_result_counts_match_the_database(demo: DemoResult) -> None:
    contents = _contents(demo.db_path)
    assert demo.table_counts == {t: len(contents[t]) for t in demo.table_counts}
    assert set(demo.table_counts) == set(TABLES)
    assert demo.spec_path == demo.db_path.with_name("legacy.extract.yaml")
    assert demo.errors_path == demo.db_path.with_name("legacy.errors.csv")
    errors = demo.errors_path.read_text().splitlines()
    assert sum(demo.error_counts.values()) == len(errors) - 1
    text = demo.describe()
    assert str(demo.db_path) in text and str(demo.errors_path) in text
    assert f"{demo.table_counts['bills']:,}" in text


def test_rerun_replaces_an_existing_database(tmp_path: Path) -> None:
    first = generate(tmp_path / "legacy.db", customers=60, months=3, seed=1)
    again = generate(tmp_path / "legacy.db", customers=60, months=3, seed=1)
    assert _contents(first.db_path)["bills"] == _contents(again.db_path)["bills"]
    assert again.table_counts == first.table_counts


def test_stdlib_loader_writes_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ADBC driver, sqlite3.executemany loads exactly the same values."""
    fast = generate(tmp_path / "a" / "legacy.db", customers=80, months=4, seed=5)
    monkeypatch.setitem(sys.modules, "adbc_driver_sqlite.dbapi", None)
    slow = generate(tmp_path / "b" / "legacy.db", customers=80, months=4, seed=5)
    assert _contents(fast.db_path) == _contents(slow.db_path)
    conn = sqlite3.connect(slow.db_path)
    types = set(conn.execute("SELECT DISTINCT typeof(amount) FROM bill_items"))
    conn.close()
    assert types == {("text",)}
