"""Spec features that shape a source nobody designed for shadowbill: with-fragments, exclude, fold, timezone_from."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from shadowbill.errors import ExtractSpecError
from shadowbill.extract.run import extract
from shadowbill.snapshot.io import read_snapshot

SPEC = """\
source: shaping-test
with:
  live_events: "SELECT * FROM events WHERE is_active = 1"
  account_zone: "SELECT s.id AS sub_id, a.tz FROM subs s JOIN accounts a ON a.id = s.account_id"
tables:
  customers:
    table: accounts
    timezone_from: tz
    columns:
      customer_id: id
      name: name
      country: {value: US}
      currency: {value: USD}
      segment: {value: sales}
      created_at: {from: created, type: timestamp}
      tax_exempt: {value: false}
      timezone: tz
  subscriptions:
    query: "SELECT s.*, z.tz FROM subs s JOIN account_zone z ON z.sub_id = s.id"
    timezone_from: tz
    exclude:
      - reason: test accounts are not migrated
        when: {account_id: [acct-test]}
    columns:
      subscription_id: id
      customer_id: account_id
      status: {value: active}
      interval: {value: month}
      interval_count: {value: 1}
      current_period_start: {from: started, type: timestamp}
      current_period_end: {from: period_end, type: timestamp}
      started_at: {from: started, type: timestamp}
      currency: {value: USD}
  subscription_items:
    query: "SELECT e.*, z.tz FROM live_events e JOIN account_zone z ON z.sub_id = e.sub_id"
    timezone_from: tz
    exclude:
      - reason: events of test accounts
        when: {sub_id: [s-test]}
    fold:
      key: sub_id
      at: effective
      order_by: [record_id]
      ends: {event_type: [CANCEL]}
    columns:
      item_id: sub_id
      subscription_id: sub_id
      price_id: plan
      quantity: {value: 1}
      valid_from: {from: fold_valid_from, type: timestamp}
      valid_to: {from: fold_valid_to, type: timestamp}
"""


@pytest.fixture
def shaped_source(tmp_path: Path) -> str:
    """A small event-sourced estate in SQLite: accounts in two zones, an event log, a test account."""
    path = tmp_path / "legacy.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE accounts (id TEXT, name TEXT, tz TEXT, created TEXT);
            INSERT INTO accounts VALUES
              ('acct-la', 'Los Angeles Co', 'America/Los_Angeles', '2024-01-14 00:00:00'),
              ('acct-tk', 'Tokyo KK', 'Asia/Tokyo', '2024-01-14 00:00:00'),
              ('acct-test', 'Test', 'UTC', '2024-01-01 00:00:00');
            CREATE TABLE subs (id TEXT, account_id TEXT, started TEXT, period_end TEXT);
            INSERT INTO subs VALUES
              ('s-la', 'acct-la', '2024-01-14 00:00:00', '2024-05-14 00:00:00'),
              ('s-tk', 'acct-tk', '2024-01-14 00:00:00', '2024-05-14 00:00:00'),
              ('s-test', 'acct-test', '2024-01-01 00:00:00', '2024-05-01 00:00:00');
            CREATE TABLE events (record_id INTEGER, sub_id TEXT, effective TEXT,
                                 event_type TEXT, plan TEXT, is_active INTEGER);
            INSERT INTO events VALUES
              (1, 's-la', '2024-01-14 00:00:00', 'CREATE', 'basic', 1),
              (2, 's-la', '2024-02-20 00:00:00', 'CHANGE', 'pro', 1),
              (3, 's-la', '2024-04-14 00:00:00', 'CANCEL', NULL, 1),
              (4, 's-tk', '2024-01-14 00:00:00', 'CREATE', 'basic', 1),
              (5, 's-tk', '2024-01-14 00:00:00', 'PHASE', 'pro', 1),
              (6, 's-tk', '2024-03-01 00:00:00', 'CHANGE', 'basic', 0),
              (7, 's-test', '2024-01-01 00:00:00', 'CREATE', 'basic', 1);
            """
        )
    return f"sqlite:///{path}"


@pytest.mark.parametrize("layout", ["buckets", "single"])
def test_rows_are_counted_in_out_quarantined_or_excluded(
    shaped_source: str, tmp_path: Path, layout: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    result = extract(shaped_source, spec, tmp_path / "snap", progress=False, layout=layout)  # type: ignore[arg-type]
    for counts in result.counts.values():
        assert counts.rows_in == counts.rows_out + counts.quarantined + counts.excluded
    subs = result.counts["subscriptions"]
    assert (subs.rows_in, subs.rows_out, subs.excluded) == (3, 2, 1)
    items = result.counts["subscription_items"]
    # 6 live events: 1 test-account event excluded, 1 cancellation folded into an end,
    # 1 event replaced by another of the same key at the same instant
    assert (items.rows_in, items.rows_out, items.excluded) == (6, 3, 3)
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["tables"]["subscription_items"]["excluded_by_reason"] == {
        "events of test accounts": 1,
        "fold: an ending event closes the row before it": 1,
        "fold: replaced by a later event of the same key at the same time": 1,
    }
    assert manifest["tables"]["subscriptions"]["excluded"] == 1


def test_fold_gives_validity_rows_and_zones_localize_per_row(
    shaped_source: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    extract(shaped_source, spec, tmp_path / "snap", progress=False)
    snapshot = read_snapshot(tmp_path / "snap")
    items = snapshot["subscription_items"].sort_values(["item_id", "valid_from"])
    la = items[items["item_id"] == "s-la"]
    assert la["price_id"].tolist() == ["basic", "pro"]
    # local midnights: 08:00Z in winter (PST), 07:00Z after the DST change (PDT)
    assert la["valid_from"].tolist() == [
        pd.Timestamp("2024-01-14T08:00:00Z"),
        pd.Timestamp("2024-02-20T08:00:00Z"),
    ]
    assert la["valid_to"].tolist()[1] == pd.Timestamp("2024-04-14T07:00:00Z")
    tk = items[items["item_id"] == "s-tk"]
    assert tk["price_id"].tolist() == ["pro"]
    assert pd.isna(tk["valid_to"].iloc[0])  # the inactive change was left out by the fragment
    customers = snapshot["customers"].set_index("customer_id")
    assert customers.loc["acct-tk", "created_at"] == pd.Timestamp("2024-01-13T15:00:00Z")
    assert customers.loc["acct-la", "timezone"] == "America/Los_Angeles"


def test_rule_naming_a_missing_column_is_a_spec_error(shaped_source: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("when: {account_id: [acct-test]}", "when: {acount: [x]}"))
    with pytest.raises(ExtractSpecError, match=r"exclude\.0: column 'acount' is not in the source"):
        extract(shaped_source, spec, tmp_path / "snap", progress=False)


def test_unknown_zone_name_quarantines_the_row(shaped_source: str, tmp_path: Path) -> None:
    import sqlite3 as sq

    db = shaped_source.removeprefix("sqlite:///")
    with sq.connect(db) as conn:
        conn.execute("UPDATE accounts SET tz = 'Mars/Olympus' WHERE id = 'acct-test'")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    result = extract(shaped_source, spec, tmp_path / "snap", progress=False)
    assert result.quarantine_by_table["customers"] == {"wrong_type": 1}
