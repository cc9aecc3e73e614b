"""Invariants of the generated legacy invoices and item history, read from SQLite directly."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict

import numpy as np
import pytest
from demo_reference import add_months, from_epoch, from_naive, minor, read_table
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.demo.billing_calendar import add_months as add_months_vectorized
from shadowbill.demo.billing_calendar import epoch
from shadowbill.demo.generate import DemoResult

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

WINDOW_START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
WINDOW_END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CHARGES = {"RECUR", "PRORATE", "USAGE"}


def test_totals_add_up_and_lines_sum(demo: DemoResult) -> None:
    lines = defaultdict(list)
    for r in read_table(demo.db_path, "bill_items"):
        lines[r["bill_no"]].append(r)
    bills = read_table(demo.db_path, "bills")
    assert len(bills) > 1000
    assert set(lines) == {b["bill_no"] for b in bills}
    for b in bills:
        cur = b["cur"]
        subtotal, discount = minor(b["subtotal"], cur), minor(b["discount_amt"], cur)
        tax, total = minor(b["tax_amt"], cur), minor(b["total_amt"], cur)
        assert total == subtotal - discount + tax, b["bill_no"]
        own = lines[b["bill_no"]]
        amounts = defaultdict(int)
        for line in own:
            assert line["cur"] == cur
            amounts[line["item_type"]] += minor(line["amount"], cur)
        assert subtotal == sum(amounts[k] for k in CHARGES), b["bill_no"]
        assert discount == -amounts["DISC"] and discount >= 0
        assert tax == amounts["TAX"] and tax >= 0
        numbers = [line["item_no"] for line in own]
        assert numbers == [f"{b['bill_no']}-{i:02d}" for i in range(1, len(own) + 1)]


def test_line_signs_and_quantities(demo: DemoResult) -> None:
    for line in read_table(demo.db_path, "bill_items"):
        amount = minor(line["amount"], line["cur"])
        kind = line["item_type"]
        if kind == "DISC":
            assert amount <= 0 and line["sku"] is None and line["qty"] is None
        elif kind == "TAX":
            assert amount >= 0 and line["sku"] is None
        elif kind == "PRORATE":
            assert line["item_text"].startswith("Unused" if amount < 0 else "Remaining")
        else:
            assert line["qty"] > 0, line["item_no"]  # no zero-quantity usage or seat lines
            assert line["item_text"].startswith(f"{line['qty']} x ")


def test_one_invoice_per_period_inside_the_window(demo: DemoResult) -> None:
    plans = {p["plan_ref"]: p for p in read_table(demo.db_path, "plans_active")}
    seen = set()
    for b in read_table(demo.db_path, "bills"):
        start, end = from_naive(b["period_from"]), from_naive(b["period_to"])
        assert start is not None and end is not None
        assert WINDOW_START < end <= WINDOW_END
        assert b["issued_epoch"] == int(end.timestamp())
        plan = plans[b["plan_ref"]]
        trial_end = from_naive(plan["trial_until"])
        assert trial_end is None or start >= trial_end  # nothing billed during a trial
        canceled = from_epoch(plan["cancel_epoch"])
        assert canceled is None or end <= canceled
        assert (b["plan_ref"], start) not in seen
        seen.add((b["plan_ref"], start))
        assert b["bill_status"] == "PAID" or plan["plan_state"] == "PDUE"
    states = {p["plan_state"] for p in plans.values()}
    assert {"ACTV", "CNCL", "TRIAL", "PDUE"} <= states


def test_item_history_is_contiguous(demo: DemoResult) -> None:
    rows = defaultdict(list)
    for r in read_table(demo.db_path, "plan_lines"):
        rows[r["line_ref"]].append(r)
    assert len(rows) < sum(len(v) for v in rows.values())  # some items changed
    for line_ref, history in rows.items():
        history.sort(key=lambda r: r["eff_from"])
        for old, new in itertools.pairwise(history):
            assert old["eff_to"] == new["eff_from"], line_ref
            assert (old["qty"], old["sku"]) != (new["qty"], new["sku"]), line_ref


def test_pro_price_change_at_a_period_boundary(demo: DemoResult) -> None:
    plans = {p["plan_ref"]: p for p in read_table(demo.db_path, "plans_active")}
    first_v2: dict[str, dt.datetime] = {}
    for r in read_table(demo.db_path, "plan_lines"):
        start = from_epoch(r["eff_from"])
        assert start is not None
        if r["sku"] == "PRO-M25" and start < first_v2.get(r["line_ref"], WINDOW_END):
            first_v2[r["line_ref"]] = start
    switches = 0
    effective = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    for line_ref, start in first_v2.items():
        plan = plans[line_ref.rsplit("-", 1)[0]]
        signup = from_epoch(plan["signup_epoch"])
        assert signup is not None
        if start == signup:
            assert signup >= effective  # new customers start on the new price
            continue
        anchor = from_naive(plan["trial_until"]) or signup
        k = 0
        while add_months(anchor, k) < effective:
            k += 1
        assert start == add_months(anchor, k)  # the first period start on/after 2025-07-01
        switches += 1
    assert switches > 0


def test_seat_changes_fall_mid_period_at_a_time_of_day(demo: DemoResult) -> None:
    changes = [r for r in read_table(demo.db_path, "bill_items") if r["item_type"] == "PRORATE"]
    assert changes
    assert any(r["line_from"] % 86400 != 0 for r in changes)  # days and seconds prorate differently


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 12, 31)),
    st.integers(min_value=0, max_value=60),
)
def test_add_months_clamps_and_keeps_time(moment: dt.datetime, months: int) -> None:
    moment = moment.replace(microsecond=0, tzinfo=dt.UTC)
    got = add_months_vectorized(np.array([epoch(moment)]), np.array([months]))[0]
    assert got == epoch(add_months(moment, months))
