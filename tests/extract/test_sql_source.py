"""Extraction from SQL databases: one legacy-shaped schema on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from shadowbill.errors import ExtractSpecError, SourceError
from shadowbill.extract.run import extract
from shadowbill.extract.sql_source import SqlReader, adbc_uri, mask_url
from shadowbill.snapshot.io import read_snapshot

SPEC = """\
source: legacy-test
timezone: Europe/Berlin
tables:
  customers:
    table: {p}accounts
    source_key: acct_no
    columns:
      customer_id: acct_no
      name: company
      email: email
      country: {{from: country, transform: upper}}
      currency: cur
      segment: {{from: channel, map: {{WEB: self_serve, SALES: sales}}}}
      created_at: {{from: opened, type: epoch_seconds}}
      tax_exempt: {{from: vat, type: bool}}
  subscriptions:
    table: {p}plans
    source_key: plan_ref
    columns:
      subscription_id: plan_ref
      customer_id: acct_no
      status: {{from: state, map: {{A: active, C: canceled}}}}
      interval: {{from: cycle, map: {{M: month, Y: year}}}}
      interval_count: {{value: 1}}
      current_period_start: {{from: cycle_start, type: timestamp}}
      current_period_end: {{from: cycle_end, type: timestamp}}
      started_at: {{from: signup, type: epoch_seconds}}
      canceled_at: {{from: cancel_epoch, type: epoch_seconds, null_if: [0]}}
      currency: cur
  subscription_items:
    table: {p}plan_items
    source_key: hist_id
    columns:
      item_id: line_ref
      subscription_id: plan_ref
      price_id: sku
      quantity: qty
      valid_from: {{from: eff_from, type: epoch_seconds}}
      valid_to: {{from: eff_to, type: epoch_seconds}}
  invoices:
    table: {p}bills
    source_key: bill_no
    columns:
      invoice_id: bill_no
      subscription_id: plan_ref
      customer_id: acct_no
      period_start: {{from: period_from, type: timestamp}}
      period_end: {{from: period_to, type: timestamp}}
      currency: cur
      subtotal: {{from: subtotal, type: major_units, currency_from: cur}}
      discount: {{from: discount, type: major_units, currency_from: cur}}
      tax: {{from: tax, type: major_units, currency_from: cur}}
      total: {{from: total, type: major_units, currency_from: cur}}
      status: {{value: paid}}
      issued_at: {{from: issued, type: epoch_seconds}}
  invoice_lines:
    query: >-
      SELECT i.item_no, i.bill_no, i.sku, i.kind, i.qty, i.unit_price, i.amount,
      i.line_from, i.line_to, b.cur AS bill_cur
      FROM {p}bill_items i JOIN {p}bills b ON b.bill_no = i.bill_no
    source_key: item_no
    columns:
      line_id: item_no
      invoice_id: bill_no
      price_id: sku
      kind: {{from: kind, transform: lower}}
      quantity: qty
      unit_amount_decimal: {{from: unit_price, type: major_decimal, currency_from: bill_cur}}
      amount: {{from: amount, type: major_units, currency_from: bill_cur}}
      period_start: {{from: line_from, type: epoch_seconds}}
      period_end: {{from: line_to, type: epoch_seconds}}
  tax_rates:
    query: "SELECT code, country, pct, incl FROM {p}vat WHERE code LIKE '%jp'"
    columns:
      tax_rate_id: code
      percentage: {{from: pct, type: decimal_string}}
      inclusive: {{from: incl, type: bool}}
      country: country
"""

JAN, FEB, MAR = 1704067200, 1706745600, 1709251200  # 2024-01-01, 02-01, 03-01 UTC
MONEY = sa.Numeric(14, 3)


def legacy_schema(p: str) -> sa.MetaData:
    """The legacy billing tables (names prefixed so parallel runs do not collide)."""
    meta = sa.MetaData()
    sa.Table(
        f"{p}accounts",
        meta,
        sa.Column("acct_no", sa.Integer),
        sa.Column("company", sa.String(80)),
        sa.Column("email", sa.String(120), nullable=True),
        sa.Column("country", sa.String(2)),
        sa.Column("cur", sa.String(3)),
        sa.Column("channel", sa.String(10)),
        sa.Column("opened", sa.BigInteger),
        sa.Column("vat", sa.Boolean),
    )
    sa.Table(
        f"{p}plans",
        meta,
        sa.Column("plan_ref", sa.String(20)),
        sa.Column("acct_no", sa.Integer),
        sa.Column("state", sa.String(2)),
        sa.Column("cycle", sa.String(1)),
        sa.Column("cycle_start", sa.DateTime),
        sa.Column("cycle_end", sa.DateTime),
        sa.Column("signup", sa.BigInteger),
        sa.Column("cancel_epoch", sa.BigInteger),
        sa.Column("cur", sa.String(3)),
    )
    sa.Table(
        f"{p}plan_items",
        meta,
        sa.Column("hist_id", sa.Integer),
        sa.Column("line_ref", sa.String(20)),
        sa.Column("plan_ref", sa.String(20)),
        sa.Column("sku", sa.String(20)),
        sa.Column("qty", sa.Integer),
        sa.Column("eff_from", sa.BigInteger),
        sa.Column("eff_to", sa.BigInteger, nullable=True),
    )
    sa.Table(
        f"{p}bills",
        meta,
        sa.Column("bill_no", sa.String(20)),
        sa.Column("plan_ref", sa.String(20)),
        sa.Column("acct_no", sa.Integer),
        sa.Column("period_from", sa.String(30)),
        sa.Column("period_to", sa.String(30)),
        sa.Column("cur", sa.String(3)),
        sa.Column("subtotal", MONEY),
        sa.Column("discount", MONEY),
        sa.Column("tax", MONEY),
        sa.Column("total", MONEY),
        sa.Column("issued", sa.BigInteger),
    )
    sa.Table(
        f"{p}bill_items",
        meta,
        sa.Column("item_no", sa.String(20)),
        sa.Column("bill_no", sa.String(20)),
        sa.Column("sku", sa.String(20), nullable=True),
        sa.Column("kind", sa.String(10)),
        sa.Column("qty", sa.Integer, nullable=True),
        sa.Column("unit_price", sa.String(20), nullable=True),
        sa.Column("amount", MONEY),
        sa.Column("line_from", sa.BigInteger),
        sa.Column("line_to", sa.BigInteger),
    )
    sa.Table(
        f"{p}vat",
        meta,
        sa.Column("code", sa.String(10)),
        sa.Column("country", sa.String(2)),
        sa.Column("pct", sa.Numeric(6, 3)),
        sa.Column("incl", sa.Integer),
    )
    return meta


def _bill(no, plan, acct, cur, sub, disc, tax, total):
    return {
        "bill_no": no,
        "plan_ref": plan,
        "acct_no": acct,
        "period_from": "2024-01-01T00:00:00Z",
        "period_to": "2024-02-01T00:00:00+00:00",
        "cur": cur,
        "subtotal": sub,
        "discount": disc,
        "tax": tax,
        "total": total,
        "issued": FEB,
    }


def _line(no, bill, sku, kind, qty, unit, amount):
    return {
        "item_no": no,
        "bill_no": bill,
        "sku": sku,
        "kind": kind,
        "qty": qty,
        "unit_price": unit,
        "amount": amount,
        "line_from": JAN,
        "line_to": FEB,
    }


def legacy_rows(p: str) -> dict[str, list[dict[str, object]]]:
    """A small legacy company: USD/JPY/KWD customers, and planted problems on account 4 and B5."""
    accounts = [
        (1, "Acme", "a@acme.example", "us", "USD", "WEB", False),
        (2, "Kabu", None, "jp", "JPY", "SALES", False),
        (3, "Souk", None, "kw", "KWD", "SALES", True),
        (4, "Partner Co", None, "de", "EUR", "PARTNER", False),  # unmapped channel
    ]
    plans = [("P1", 1, "USD"), ("P2", 2, "JPY"), ("P3", 3, "KWD"), ("P4", 4, "EUR")]
    return {
        f"{p}accounts": [
            dict(
                zip(
                    ("acct_no", "company", "email", "country", "cur", "channel", "vat"),
                    a,
                    strict=True,
                ),
                opened=JAN,
            )
            for a in accounts
        ],
        f"{p}plans": [
            {
                "plan_ref": ref,
                "acct_no": acct,
                "state": "A",
                "cycle": "M",
                "cycle_start": pd.Timestamp("2024-03-01 10:00:00").to_pydatetime(),
                "cycle_end": pd.Timestamp("2024-04-01 10:00:00").to_pydatetime(),
                "signup": JAN,
                "cancel_epoch": 0,
                "cur": cur,
            }
            for ref, acct, cur in plans
        ],
        f"{p}plan_items": [
            {
                "hist_id": i,
                "line_ref": f"{ref}-SEAT",
                "plan_ref": ref,
                "sku": "pro_month",
                "qty": 3,
                "eff_from": JAN,
                "eff_to": None,
            }
            for i, (ref, _, _) in enumerate(plans, start=1)
        ],
        f"{p}bills": [
            _bill("B1", "P1", 1, "USD", "117.120", "0.000", "0.000", "117.120"),
            _bill("B2", "P2", 2, "JPY", "17700.000", "0.000", "1770.000", "19470.000"),
            _bill("B3", "P3", 3, "KWD", "12.345", "0.000", "0.000", "12.345"),
            _bill("B5", "P1", 1, "USD", "10.005", "0.000", "0.000", "10.005"),  # 1/2 cent
        ],
        f"{p}bill_items": [
            _line("B1-1", "B1", "pro_month", "RECURRING", 3, "39.00", "117.000"),
            _line("B1-2", "B1", "sms", "USAGE", 16, "0.0075", "0.120"),
            _line("B2-1", "B2", "pro_month", "RECURRING", 3, "5900", "17700.000"),
            _line("B2-2", "B2", None, "TAX", None, None, "1770.000"),
            _line("B3-1", "B3", "pro_month", "RECURRING", 1, "12.345", "12.345"),
            _line("B5-1", "B5", "pro_month", "RECURRING", 1, "10.005", "10.005"),
        ],
        f"{p}vat": [
            {"code": "ct_jp", "country": "JP", "pct": "10.000", "incl": 0},
            {"code": "vat_de", "country": "DE", "pct": "19.000", "incl": 0},  # not LIKE '%jp'
        ],
    }


@pytest.fixture
def prefix() -> str:
    return f"sb{uuid.uuid4().hex[:8]}_"


@pytest.fixture
def spec_file(tmp_path: Path, prefix: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(p=prefix))
    return path


def build_legacy(url: str, prefix: str) -> sa.MetaData:
    engine = sa.create_engine(url)
    meta = legacy_schema(prefix)
    meta.create_all(engine)
    with engine.begin() as conn:
        for name, rows in legacy_rows(prefix).items():
            conn.execute(meta.tables[name].insert(), rows)
    engine.dispose()
    return meta


@pytest.fixture
def sqlite_url(tmp_path: Path, prefix: str) -> str:
    url = f"sqlite:///{tmp_path / 'legacy.db'}"
    build_legacy(url, prefix)
    return url


@pytest.fixture
def legacy_postgres(postgres_url: str, prefix: str) -> Iterator[str]:
    meta = build_legacy(postgres_url, prefix)
    yield postgres_url
    engine = sa.create_engine(postgres_url)
    meta.drop_all(engine)
    engine.dispose()


@pytest.fixture
def legacy_mariadb(mariadb_url: str, prefix: str) -> Iterator[str]:
    meta = build_legacy(mariadb_url, prefix)
    yield mariadb_url
    engine = sa.create_engine(mariadb_url)
    meta.drop_all(engine)
    engine.dispose()


def run(url: str, spec: Path, out: Path, chunk_size: int = 200_000):
    result = extract(url, spec, out, chunk_size=chunk_size, progress=False)
    return result, read_snapshot(out)


def test_sqlite_extraction_is_exact(sqlite_url, spec_file, prefix, tmp_path):
    result, snap = run(sqlite_url, spec_file, tmp_path / "snap", chunk_size=2)
    for name, c in result.counts.items():
        assert c.rows_in == c.rows_out + c.quarantined, name
    bills = snap["invoices"].set_index("invoice_id")
    assert bills.loc["B1", "subtotal"] == 11712
    assert bills.loc["B2", "total"] == 19470  # JPY: yen
    assert bills.loc["B3", "subtotal"] == 12345  # KWD: fils
    lines = snap["invoice_lines"].set_index("line_id")
    assert lines.loc["B1-2", "unit_amount_decimal"] == "0.75"
    assert lines.loc["B1-2", "kind"] == "usage"
    assert lines.loc["B3-1", "unit_amount_decimal"] == "12345"
    subs = snap["subscriptions"].set_index("subscription_id")
    # naive database timestamps are Berlin local time (the spec's timezone): 10:00 CET = 09:00Z
    assert subs.loc["P1", "current_period_start"] == pd.Timestamp("2024-03-01T09:00:00Z")
    assert pd.isna(subs.loc["P1", "canceled_at"])  # null_if: [0]
    customers = snap["customers"].set_index("customer_id")
    assert customers.loc["1", "country"] == "US" and bool(customers.loc["3", "tax_exempt"])
    assert snap["tax_rates"]["percentage"].tolist() == ["10"]
    q = snap.quarantine.set_index("source_ref")
    assert q.loc[f"{prefix}accounts acct_no=4", "reason"] == "unmapped_value"
    assert q.loc[f"{prefix}plans plan_ref=P4", "reason"] == "parent_quarantined"
    assert q.loc[f"{prefix}bills bill_no=B5", "reason"] == "too_many_decimals"
    assert q.loc["query item_no=B5-1", "reason"] == "too_many_decimals"  # its own amount
    assert snap.manifest["source_name"] == "legacy-test"


def _same_snapshots(a: Path, b: Path) -> None:
    left, right = read_snapshot(a), read_snapshot(b)
    for name, table in left.manifest["tables"].items():
        assert table["sha256"] == right.manifest["tables"][name]["sha256"], name
    keep = ["table", "source_ref", "reason", "detail"]
    pd.testing.assert_frame_equal(left.quarantine[keep], right.quarantine[keep])


@pytest.mark.server
def test_postgres_and_mariadb_give_the_same_snapshot(
    sqlite_url, legacy_postgres, legacy_mariadb, spec_file, tmp_path
):
    run(sqlite_url, spec_file, tmp_path / "sqlite")
    run(legacy_postgres, spec_file, tmp_path / "postgres", chunk_size=3)
    run(legacy_mariadb, spec_file, tmp_path / "mariadb", chunk_size=3)
    _same_snapshots(tmp_path / "sqlite", tmp_path / "postgres")
    _same_snapshots(tmp_path / "sqlite", tmp_path / "mariadb")


@pytest.mark.server
def test_postgres_is_read_through_adbc(legacy_postgres):
    with SqlReader(legacy_postgres) as reader:
        assert reader.via == "adbc"


def test_sqlite_is_read_through_adbc(sqlite_url):
    with SqlReader(sqlite_url) as reader:
        assert reader.via == "adbc"


def test_sqlite_column_changing_type_falls_back_to_sqlalchemy(tmp_path, monkeypatch):
    switches = []
    original = SqlReader.use_sqlalchemy

    def spy(self: SqlReader) -> None:
        switches.append(self.via)
        original(self)

    monkeypatch.setattr(SqlReader, "use_sqlalchemy", spy)
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE rates (code, country TEXT, pct TEXT, incl INTEGER)")
        rows = [(i if i < 1100 else f"R{i}", "DE", "19", 0) for i in range(1200)]
        conn.exec_driver_sql("INSERT INTO rates VALUES (?, ?, ?, ?)", rows)
    engine.dispose()
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "tables:\n  tax_rates:\n    table: rates\n    columns:\n"
        "      tax_rate_id: code\n      percentage: {from: pct, type: decimal_string}\n"
        "      inclusive: {from: incl, type: bool}\n      country: country\n"
    )
    result, snap = run(url, spec, tmp_path / "snap", chunk_size=500)
    assert result.counts["tax_rates"].rows_out == 1200
    assert {"0", "1099", "R1100", "R1199"} <= set(snap["tax_rates"]["tax_rate_id"])
    assert switches == ["adbc"]  # ADBC inferred INT64 from the first 1024 rows, then met text


def test_url_mapping_for_adbc():
    assert adbc_uri("sqlite:///legacy.db") == ("sqlite", "legacy.db")
    assert adbc_uri("sqlite:////var/data/legacy.db") == ("sqlite", "/var/data/legacy.db")
    assert adbc_uri("postgresql+psycopg://bill:pw@db.internal:5433/legacy") == (
        "postgresql",
        "postgresql://bill:pw@db.internal:5433/legacy",
    )
    assert adbc_uri("postgresql://bill@db/legacy") == ("postgresql", "postgresql://bill@db/legacy")
    assert adbc_uri("mysql+pymysql://root@127.0.0.1:3306/x") is None
    assert mask_url("postgresql+psycopg://bill:pw@db/legacy") == (
        "postgresql+psycopg://bill:***@db/legacy"
    )


def test_unreachable_database_is_one_line_without_password(spec_file, tmp_path):
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/legacy"
    with pytest.raises(SourceError) as err:
        extract(url, spec_file, tmp_path / "snap", progress=False)
    message = str(err.value)
    assert message.startswith(
        "cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:1/legacy"
    )
    assert "hunter2" not in message and "\n" not in message


def test_missing_table_names_the_table_and_spec_key(sqlite_url, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("tables:\n  tax_rates:\n    table: vat_ratez\n    columns: {}\n")
    with pytest.raises(SourceError) as err:
        extract(sqlite_url, spec, tmp_path / "snap", progress=False)
    message = str(err.value)
    assert "vat_ratez (spec tables.tax_rates)" in message and "no such table" in message
    assert "\n" not in message


def test_spec_column_missing_from_source(sqlite_url, spec_file, tmp_path):
    spec_file.write_text(spec_file.read_text().replace("name: company", "name: company_name"))
    with pytest.raises(ExtractSpecError) as err:
        extract(sqlite_url, spec_file, tmp_path / "snap", progress=False)
    assert f"{spec_file}:9: tables.customers.columns.name" in str(err.value)
    assert "'company_name' is not in" in str(err.value)


def test_missing_sqlite_file(spec_file, tmp_path):
    with pytest.raises(SourceError, match=r"database file .* not found"):
        extract(f"sqlite:///{tmp_path / 'nope.db'}", spec_file, tmp_path / "snap", progress=False)
    assert not (tmp_path / "nope.db").exists()  # never created by trying to read it


def test_database_needs_a_spec(sqlite_url, tmp_path):
    with pytest.raises(ExtractSpecError, match="needs --spec"):
        extract(sqlite_url, None, tmp_path / "snap", progress=False)
