"""The demo company's legacy database extracts cleanly, and identically from SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from demo_companies import demo_company
from sqlalchemy.engine import make_url

from shadowbill.demo.generate import DemoResult
from shadowbill.extract.run import extract
from shadowbill.snapshot.io import read_snapshot

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo() -> DemoResult:
    """A small demo company: 300 customers, 4 months."""
    return demo_company(300, 4, 11).made


@pytest.fixture(scope="module")
def sqlite_snapshot(demo: DemoResult) -> Path:
    return demo_company(300, 4, 11).snapshot


def source_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


def test_demo_extracts_without_quarantine(demo, sqlite_snapshot):
    snap = read_snapshot(sqlite_snapshot)
    assert snap.quarantine.empty, snap.quarantine[["source_ref", "detail"]].head().to_string()
    counts = source_counts(demo.db_path)
    tables = snap.manifest["tables"]
    assert tables["customers"]["rows_out"] == counts["accounts"]
    assert tables["invoices"]["rows_out"] == counts["bills"]
    assert tables["invoice_lines"]["rows_out"] == counts["bill_items"]
    for table in tables.values():
        assert table["rows_in"] == table["rows_out"] and table["quarantined"] == 0


def copy_database(sqlite_path: Path, url: str, schema: str | None = None) -> None:
    """Copy every table of the SQLite file into another database, keeping text as text."""
    source = sa.create_engine(f"sqlite:///{sqlite_path}")
    target = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(source)
    copy = sa.MetaData(schema=schema)
    for table in meta.sorted_tables:
        columns = [
            sa.Column(c.name, sa.BigInteger if isinstance(c.type, sa.Integer) else sa.Text)
            for c in table.columns
        ]
        sa.Table(table.name, copy, *columns)
    copy.create_all(target)
    with source.connect() as read, target.begin() as write:
        for table in meta.sorted_tables:
            rows = [dict(r._mapping) for r in read.execute(table.select())]
            if rows:
                write.execute(
                    copy.tables[f"{schema}.{table.name}" if schema else table.name].insert(), rows
                )
    source.dispose()
    target.dispose()


@pytest.fixture
def demo_postgres(postgres_url: str, demo: DemoResult) -> Iterator[str]:
    schema = f"sbdemo_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    copy_database(demo.db_path, postgres_url, schema=schema)
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


@pytest.fixture
def demo_mariadb(mariadb_url: str, demo: DemoResult) -> Iterator[str]:
    database = f"sbdemo_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    url = make_url(mariadb_url).set(database=database).render_as_string(hide_password=False)
    copy_database(demo.db_path, url)
    yield url
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {database}")
    engine.dispose()


@pytest.mark.server
def test_demo_snapshots_identical_across_databases(
    demo, sqlite_snapshot, demo_postgres, demo_mariadb, tmp_path
):
    extract(demo_postgres, demo.spec_path, tmp_path / "postgres", chunk_size=1000, progress=False)
    extract(demo_mariadb, demo.spec_path, tmp_path / "mariadb", chunk_size=1000, progress=False)
    reference = read_snapshot(sqlite_snapshot).manifest
    for other in ("postgres", "mariadb"):
        snap = read_snapshot(tmp_path / other)
        assert snap.quarantine.empty, (other, snap.quarantine["detail"].head().tolist())
        for name, table in reference["tables"].items():
            assert snap.manifest["tables"][name]["sha256"] == table["sha256"], (other, name)
