"""Write the legacy tables into a fresh SQLite file, fast: bulk Arrow ingest, no journal.

Money columns are TEXT (exact decimals in major units), times INTEGER epoch seconds or
TEXT, so that nothing is stored as a float. The ADBC SQLite driver ingests Arrow tables
in C; without it, the standard library's ``executemany`` loads the same values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from shadowbill.errors import InputError

DDL = {
    "accounts": """acct_no TEXT PRIMARY KEY, company_name TEXT NOT NULL, contact_email TEXT,
        country_code TEXT NOT NULL, billing_currency TEXT NOT NULL, channel TEXT NOT NULL,
        opened_epoch INTEGER NOT NULL, vat_exempt TEXT NOT NULL""",
    "plans_active": """plan_ref TEXT PRIMARY KEY, acct_no TEXT NOT NULL, seat_plan TEXT NOT NULL,
        billing_cycle TEXT NOT NULL, plan_state TEXT NOT NULL, signup_epoch INTEGER NOT NULL,
        trial_until TEXT, cancel_epoch INTEGER, cycle_start INTEGER NOT NULL,
        cycle_end INTEGER NOT NULL, cur TEXT NOT NULL, billing_enabled INTEGER NOT NULL""",
    "plan_lines": """hist_id INTEGER PRIMARY KEY, line_ref TEXT NOT NULL, plan_ref TEXT NOT NULL,
        sku TEXT NOT NULL, qty INTEGER NOT NULL, eff_from INTEGER NOT NULL, eff_to INTEGER""",
    "promo_grants": """grant_id TEXT PRIMARY KEY, plan_ref TEXT NOT NULL, line_ref TEXT,
        promo_code TEXT NOT NULL, pct TEXT, amt TEXT, cur TEXT NOT NULL,
        valid_from INTEGER NOT NULL, valid_until INTEGER NOT NULL""",
    "meter_readings": """reading_id INTEGER PRIMARY KEY, plan_ref TEXT NOT NULL,
        channel TEXT NOT NULL, period_from INTEGER NOT NULL, period_to INTEGER NOT NULL,
        units INTEGER NOT NULL""",
    "vat_rates": """rate_code TEXT PRIMARY KEY, country_code TEXT NOT NULL, vat_pct TEXT NOT NULL,
        incl_flag TEXT NOT NULL""",
    "bills": """bill_no TEXT NOT NULL, plan_ref TEXT NOT NULL, acct_no TEXT NOT NULL,
        period_from TEXT NOT NULL, period_to TEXT NOT NULL, cur TEXT NOT NULL,
        subtotal TEXT NOT NULL, discount_amt TEXT NOT NULL, tax_amt TEXT NOT NULL,
        total_amt TEXT NOT NULL, bill_status TEXT NOT NULL, issued_epoch INTEGER NOT NULL""",
    "bill_items": """item_no TEXT NOT NULL, bill_no TEXT NOT NULL, sku TEXT, item_type TEXT NOT NULL,
        item_text TEXT NOT NULL, qty INTEGER, unit_price TEXT, amount TEXT NOT NULL,
        cur TEXT NOT NULL, line_from INTEGER NOT NULL, line_to INTEGER NOT NULL""",
}
# Built after loading (cheaper than maintaining it row by row). The 2.5M-row bill_items
# table gets none: nothing looks its lines up one by one, and it would add seconds.
INDEXES = ("CREATE UNIQUE INDEX bills_no ON bills (bill_no)",)


def write_legacy_db(path: Path, tables: Iterable[tuple[str, pa.Table]]) -> dict[str, pa.Table]:
    """Create ``path`` afresh and load each (name, table) as it comes; return them all.

    Tables are ingested by one writer thread while the caller builds the next one, so
    building text columns and writing SQLite overlap on a multi-core machine.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a file name for the legacy database")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        stale.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA page_size = 65536")  # fewer, larger pages: a faster bulk load
        for name, columns in DDL.items():  # per table
            conn.execute(f"CREATE TABLE {name} ({columns})")
    conn.close()
    written: dict[str, pa.Table] = {}
    try:
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:
        for name, table in tables:  # per table
            _load_stdlib(path, name, table)
            written[name] = table
    else:
        with (
            adbc.connect(str(path), autocommit=True) as aconn,
            aconn.cursor() as cur,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="legacy-db") as writer,
        ):
            cur.execute("PRAGMA journal_mode=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            loads = []
            for name, table in tables:  # per table, in load order
                loads.append(writer.submit(cur.adbc_ingest, name, table, mode="append"))
                written[name] = table
            for load in loads:
                load.result()
    missing = set(DDL) - set(written)
    if missing:
        raise InputError(f"{path}: no rows given for table(s) {', '.join(sorted(missing))}")
    with sqlite3.connect(path) as conn:
        for statement in INDEXES:
            conn.execute(statement)
    conn.close()
    return written


def _load_stdlib(path: Path, name: str, table: pa.Table) -> None:
    """The same load through ``sqlite3.executemany``, in one transaction."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        marks = ", ".join("?" * table.num_columns)
        cols = ", ".join(table.column_names)
        with conn:
            for batch in table.to_batches(max_chunksize=200_000):  # per chunk of rows
                rows = zip(*(c.to_pylist() for c in batch.columns), strict=True)
                conn.executemany(f"INSERT INTO {name} ({cols}) VALUES ({marks})", rows)
    finally:
        conn.close()
