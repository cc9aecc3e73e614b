"""The legacy database looks like an in-house engine's, not like the canonical tables."""

from __future__ import annotations

import re
import sqlite3

import pytest
import yaml

from shadowbill.demo.generate import DemoResult
from shadowbill.snapshot.tables import TABLES

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

# Words that are reserved (or awkward) in SQLite, PostgreSQL or MariaDB.
RESERVED = {
    "from", "to", "order", "table", "desc", "interval", "key", "group", "user", "date",
    "range", "lines", "status", "value", "values", "limit", "offset", "current", "default",
    "end", "start", "time", "timestamp", "year", "month", "period", "type", "check", "index",
}  # fmt: skip
MONEY_TEXT = {
    "bills": ("subtotal", "discount_amt", "tax_amt", "total_amt"),
    "bill_items": ("amount",),
}
DECIMALS = {"USD": 2, "GBP": 2, "EUR": 2, "JPY": 0, "KWD": 3}


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    return {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({table})")}


def test_no_canonical_names(legacy_db: sqlite3.Connection) -> None:
    tables = {r[0] for r in legacy_db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables.isdisjoint(TABLES)
    canonical_columns = {c for t in TABLES.values() for c in t.column_names}
    for table in tables:
        columns = set(_columns(legacy_db, table))
        assert not columns & RESERVED, (table, columns & RESERVED)
        # a few shared words (currency, quantity) are fine; whole canonical schemas are not
        assert len(columns & canonical_columns) <= 2, (table, columns & canonical_columns)


def test_money_is_exact_text_in_major_units(legacy_db: sqlite3.Connection) -> None:
    for table in _tables(legacy_db):
        for column in _columns(legacy_db, table):
            reals = legacy_db.execute(
                f"SELECT count(*) FROM {table} WHERE typeof({column}) = 'real'"
            ).fetchone()[0]
            assert reals == 0, f"{table}.{column} holds floats"
    for table, columns in MONEY_TEXT.items():
        assert all(_columns(legacy_db, table)[c] == "TEXT" for c in columns)
        for column in columns:
            rows = legacy_db.execute(f"SELECT cur, {column} FROM {table}").fetchall()
            for cur, text in rows:
                decimals = DECIMALS[cur]
                pattern = rf"-?\d+\.\d{{{decimals}}}" if decimals else r"-?\d+"
                assert re.fullmatch(pattern, text), (table, column, cur, text)
    seen = {r[0] for r in legacy_db.execute("SELECT DISTINCT cur FROM bills")}
    assert seen == set(DECIMALS)


def test_sub_cent_unit_prices_are_kept(legacy_db: sqlite3.Connection) -> None:
    units = dict(
        legacy_db.execute(
            "SELECT cur, unit_price FROM bill_items WHERE sku = 'SMS' GROUP BY cur, unit_price"
        ).fetchall()
    )
    assert units["USD"] == "0.0075"
    assert units["JPY"] == "1.1"
    assert units["KWD"] == "0.0023"


def test_legacy_vocabularies(legacy_db: sqlite3.Connection) -> None:
    def values(sql: str) -> set[str]:
        return {r[0] for r in legacy_db.execute(sql)}

    assert values("SELECT DISTINCT plan_state FROM plans_active") <= {
        "ACTV",
        "TRIAL",
        "PDUE",
        "CNCL",
    }
    assert len(values("SELECT DISTINCT plan_state FROM plans_active")) >= 3
    assert values("SELECT DISTINCT vat_exempt FROM accounts") == {"Y", "N"}
    assert values("SELECT DISTINCT channel FROM accounts") == {"WEB", "SALES"}
    assert values("SELECT DISTINCT bill_status FROM bills") <= {"PAID", "DUE"}
    assert values("SELECT DISTINCT item_type FROM bill_items") == {
        "RECUR", "PRORATE", "USAGE", "DISC", "TAX",
    }  # fmt: skip
    assert values("SELECT DISTINCT billing_currency FROM accounts") == {
        "usd",
        "gbp",
        "eur",
        "jpy",
        "kwd",
    }


def test_spec_names_only_existing_source_columns(
    demo: DemoResult, legacy_db: sqlite3.Connection
) -> None:
    spec = yaml.safe_load(demo.spec_path.read_text())
    assert set(spec["tables"]) == set(TABLES)
    for name, body in spec["tables"].items():
        assert "query" not in body, "plain tables keep the spec portable"
        available = _columns(legacy_db, body["table"])
        assert body["source_key"] in available
        for target, form in body["columns"].items():
            source = form if isinstance(form, str) else form.get("from")
            if source is not None:
                assert source in available, (name, target, source)
            if isinstance(form, dict) and "currency_from" in form:
                assert form["currency_from"] in available
            if isinstance(form, dict) and "map" in form and source is not None:
                used = {
                    r[0]
                    for r in legacy_db.execute(
                        f"SELECT DISTINCT {source} FROM {body['table']} WHERE {source} IS NOT NULL"
                    )
                }
                assert used <= {str(k) for k in form["map"]}, (name, target, used)


def test_spec_validates_with_the_extractor(demo: DemoResult) -> None:
    spec_module = pytest.importorskip("shadowbill.extract.spec")
    spec = spec_module.load_extract_spec(demo.spec_path)
    assert set(spec.tables) == set(TABLES)


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
