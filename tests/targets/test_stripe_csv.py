"""Stripe's Billing migration toolkit CSV: documented columns, one row per subscription,
follow-ups for what the toolkit cannot import, a golden file for a hand-made batch."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from fixtures_golden import Golden
from ops_fixtures import T, demo_rollout, demo_snapshot, tiny_case

from shadowbill.targets.model import Operation
from shadowbill.targets.operations import build_operations, subscription_operations
from shadowbill.targets.stripe_csv import (
    LEADING,
    THIRD_PARTY_ID,
    TRAILING,
    StripeCsvError,
    toolkit_rows,
    write_stripe_csv,
)
from shadowbill.translate.run import translate

GOLDEN = Path(__file__).parent / "golden"
ID_MAP = {"customer:C1": "cus_ADA", "price:essential_month": "price_ESSENTIAL_M"}


@pytest.fixture(scope="module")
def tiny_ops() -> list[Operation]:
    plan, rollout, legacy = tiny_case()
    return build_operations(plan, rollout, legacy, batch_id="tiny")


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_batch_matches_golden(
    tiny_ops: list[Operation], tmp_path: Path, golden: Golden
) -> None:
    out = write_stripe_csv(
        tiny_ops,
        tmp_path / "tiny_batch.csv",
        id_map=ID_MAP,
        followups_path=tmp_path / "tiny_batch.followups.jsonl",
    )
    golden(GOLDEN / "tiny_batch.csv", out.read_bytes())
    followups = tmp_path / "tiny_batch.followups.jsonl"
    golden(GOLDEN / "tiny_batch.followups.jsonl", followups.read_bytes())


def test_rows_carry_the_first_phase_with_ids_or_placeholders(
    tiny_ops: list[Operation], tmp_path: Path
) -> None:
    out = write_stripe_csv(
        tiny_ops, tmp_path / "b.csv", id_map=ID_MAP, followups_path=tmp_path / "f.jsonl"
    )
    with out.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    assert header[:2] == list(LEADING) and header[-len(TRAILING) :] == list(TRAILING)
    assert header[2:6] == ["items.0.price", "items.0.quantity", "items.1.price", "items.1.quantity"]
    rows = {r[THIRD_PARTY_ID]: r for r in _read(out)}
    assert sorted(rows) == ["S1", "S2", "S3"]
    s1, s2, s3 = rows["S1"], rows["S2"], rows["S3"]
    anchor = str(int(T("2025-12-15T10:00:00Z").value // 10**9))
    assert (s1["customer"], s1["start_date"], s1["billing_cycle_anchor"]) == (
        "cus_ADA",
        anchor,
        anchor,
    )
    assert (s1["items.0.price"], s1["items.0.quantity"]) == ("price_ESSENTIAL_M", "3")
    assert (s1["items.1.price"], s1["items.1.quantity"]) == ("sms_tiered", "")  # metered
    assert (s1["coupon"], s1["default_tax_rate"], s1["currency"]) == (
        "LOYAL10_FOREVER",
        "vat_gb",
        "gbp",
    )
    assert (s1["proration_behavior"], s1["automatic_tax"]) == ("none", "FALSE")
    assert s1["metadata.shadowbill_key"] == "subscription:S1"
    assert s2["customer"] == "C2" and s2["items.0.price"] == "pro_year"  # legacy id, lookup key
    assert s2["items.1.price"] == "" and s2["coupon"] == "ANNUAL30_USD_FOREVER"
    assert s3["default_tax_rate"] == "" and s3["coupon"] == "SB_PCT12_5_ONCE"
    followups = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [f["subscription_id"] for f in followups] == ["S1", "S2"]
    s1_up, s2_up = followups
    assert s1_up["reasons"] == ["item-level discounts"]
    assert s1_up["phases"][0]["items"][0]["discounts"] == [{"coupon": "SEATS5_GBP_4M"}]
    assert s1_up["phases"][0]["discounts"] == [{"coupon": "LOYAL10_FOREVER"}]  # re-applied
    assert [i["price"] for p in s2_up["phases"] for i in p["items"]] == [
        "pro_year",
        "advanced_year",
    ]


def test_followups_are_required_when_rows_cannot_carry_everything(
    tiny_ops: list[Operation], tmp_path: Path
) -> None:
    with pytest.raises(StripeCsvError, match=r"2 subscriptions need steps.*S1 \(item-level"):
        write_stripe_csv(tiny_ops, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    s3_only = [o for o in tiny_ops if o.subscription_id in (None, "S3")]
    out = write_stripe_csv(s3_only, tmp_path / "s3.csv")
    assert [r[THIRD_PARTY_ID] for r in _read(out)] == ["S3"]


def test_start_date_never_leaves_a_gap(tiny_ops: list[Operation]) -> None:
    early = T("2025-01-01T00:00:00Z")
    _, rows, _ = toolkit_rows(tiny_ops, start_date=early)
    for row in rows:
        assert row["start_date"] == str(int(early.value // 10**9))
        assert int(row["billing_cycle_anchor"]) > int(row["start_date"])
    with pytest.raises(StripeCsvError, match=r"subscription S2 .* after its legacy paid-through"):
        toolkit_rows(tiny_ops, start_date=T("2025-06-01T00:00:00Z"))


def test_a_reference_to_nothing_is_refused(tiny_ops: list[Operation]) -> None:
    without_customers = [o for o in tiny_ops if o.kind != "customer"]
    with pytest.raises(StripeCsvError, match="refers to customer:C1"):
        toolkit_rows(without_customers)
    _, rows, _ = toolkit_rows(
        without_customers, id_map={f"customer:C{i}": f"cus_{i}" for i in (1, 2, 3)}
    )
    assert [r["customer"] for r in rows] == ["cus_1", "cus_2", "cus_3"]


def test_demo_phase_3_has_a_row_per_subscription(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    snapshot = demo_snapshot(tmp_path_factory.mktemp("csv_demo"))
    rollout = demo_rollout()
    ops = build_operations(translate(snapshot, rollout, 3), rollout, snapshot, batch_id="c")
    out = write_stripe_csv(ops, tmp_path / "p3.csv", followups_path=tmp_path / "p3.jsonl")
    rows = _read(out)
    subs = subscription_operations(ops)
    assert len(rows) == len(subs)
    anchors = {
        o.subscription_id: o.params.get("billing_cycle_anchor", o.params.get("start_date"))
        for o in subs
    }
    assert all(int(r["billing_cycle_anchor"]) == anchors[r[THIRD_PARTY_ID]] for r in rows)
    followed = {
        json.loads(x)["subscription_id"] for x in (tmp_path / "p3.jsonl").read_text().splitlines()
    }
    assert {o.subscription_id for o in subs if o.kind == "subscription_schedule"} <= followed


def test_user_text_cells_cannot_start_a_spreadsheet_formula(
    tiny_ops: list[Operation], tmp_path: Path
) -> None:
    """OWASP CSV injection: https://owasp.org/www-community/attacks/CSV_Injection."""
    hostile = []
    for op in tiny_ops:
        if op.subscription_id == "S3":
            params = {**op.params, "metadata": {**op.params.get("metadata", {}), "note": "@SUM(1)"}}
            op = dataclasses.replace(op, subscription_id="=HYPERLINK(1)", params=params)
        if op.subscription_id in (None, "=HYPERLINK(1)"):
            hostile.append(op)
    (row,) = _read(write_stripe_csv(hostile, tmp_path / "h.csv"))
    assert row[THIRD_PARTY_ID] == "'=HYPERLINK(1)"
    assert row["metadata.note"] == "'@SUM(1)"
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())
