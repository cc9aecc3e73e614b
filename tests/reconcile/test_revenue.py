"""Revenue net of tax: recognized by day to the minor unit, history apart from projection,
and the run-rate at the cut-over (issue 16), checked on the demo company against an
independent computation from the priced invoices."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from demo_companies import DemoCompany
from fixtures_demo import SMALL
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.demo.run import examples_dir
from shadowbill.reconcile.phase_part import plan_bounds, price_sides, window_of
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reconcile.revenue import DAY_US, month_text, recognize
from shadowbill.snapshot.io import read_snapshot
from shadowbill.translate.cohort import as_of_for, latest_instant
from shadowbill.translate.rollout import load_rollout
from shadowbill.translate.run import translate

EXAMPLES = examples_dir()
_EPOCH = date(1970, 1, 1)


def _months_between(first: date, last_exclusive: date) -> list[tuple[date, date]]:
    """Calendar months overlapping [first, last_exclusive): (overlap start, overlap end)."""
    out = []
    cur = first
    while cur < last_exclusive:
        days = calendar.monthrange(cur.year, cur.month)[1]
        nxt = date(cur.year, cur.month, days) + timedelta(days=1)
        out.append((cur, min(nxt, last_exclusive)))
        cur = nxt
    return out


def reference_recognition(amount: int, start: date, end: date) -> dict[str, int]:
    """Ratable by day, largest remainder, ties to the earlier month: one invoice, by hand."""
    end = max(end, start + timedelta(days=1))
    total = (end - start).days
    months = _months_between(start, end)
    exact = [Fraction(abs(amount) * (hi - lo).days, total) for lo, hi in months]
    floors = [int(x) for x in exact]
    left = abs(amount) - sum(floors)
    ranked = sorted(range(len(months)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in ranked[:left]:
        floors[i] += 1
    sign = -1 if amount < 0 else 1
    return {f"{lo:%Y-%m}": sign * f for (lo, _), f in zip(months, floors, strict=True)}


_days = st.integers(min_value=0, max_value=4000)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=10**12), _days, st.integers(0, 800))
def test_recognized_shares_add_up_exactly_and_match_a_by_hand_allocation(
    amount: int, start_day: int, length: int
) -> None:
    start = _EPOCH + timedelta(days=start_day)
    end = start + timedelta(days=length)
    _row, month, share = recognize(
        np.array([amount]),
        np.array([start_day * DAY_US + 3_600_000_000]),  # times of day do not matter
        np.array([(start_day + length) * DAY_US]),
    )
    assert int(share.sum()) == amount
    got = dict(zip(month_text(month), (int(s) for s in share), strict=True))
    assert got == reference_recognition(amount, start, end)


@pytest.fixture(scope="module")
def demo_snapshot(demo_companies: Callable[..., DemoCompany]) -> Path:
    return demo_companies(**SMALL).snapshot


@pytest.fixture(scope="module")
def result(finance_result: ReconciliationResult) -> ReconciliationResult:
    return finance_result


def _day(ts: pd.Timestamp) -> date:
    return ts.tz_convert("UTC").date()


def _first_full_month(cutover: pd.Timestamp) -> str:
    at = cutover.tz_convert("UTC")
    if at == at.normalize() and at.day == 1:
        return f"{at:%Y-%m}"
    nxt = (at.replace(day=1) + pd.DateOffset(months=1)).date()
    return f"{nxt:%Y-%m}"


def test_mrr_at_the_cutover_is_the_new_models_first_full_month_net_of_tax(
    result: ReconciliationResult, demo_snapshot: Path
) -> None:
    """Independently: price the plan again, then allocate each invoice by hand."""
    snapshot = read_snapshot(demo_snapshot)
    rollout = load_rollout(EXAMPLES / "rollout.yaml")
    as_of = as_of_for(rollout, latest_instant(snapshot))
    plan = translate(snapshot, rollout, 2, as_of=as_of)
    window = window_of(as_of, [plan_bounds(plan, snapshot)], 12)
    new = price_sides(snapshot, plan, rollout, window).new.invoices
    cutover = plan.assignments.set_index("subscription_id")["cutover_at"]
    expected: dict[str, int] = {}
    for inv in new.itertuples(index=False):  # a few thousand invoices: plain Python
        month = _first_full_month(cutover[inv.subscription_id])
        net = int(inv.total) - int(inv.tax)
        share = reference_recognition(net, _day(inv.period_start), _day(inv.period_end))
        cur = str(inv.currency).upper()
        expected[cur] = expected.get(cur, 0) + share.get(month, 0)
    got = result.run_rate.groupby("currency")["new_mrr"].sum()
    assert {k: int(v) for k, v in got.items()} == expected
    bridge = result.bridge.pivot_table(index="currency", columns="step", values="amount")
    assert {k: int(v) for k, v in bridge["new_mrr"].items()} == expected
    steps = result.bridge.groupby("currency")["amount"].apply(
        lambda s: int(s.iloc[:-1].sum()) - int(s.iloc[-1])
    )
    assert (steps == 0).all()  # legacy MRR + every cause + allocation = new MRR


def test_history_and_projection_add_up_to_the_compared_totals(
    result: ReconciliationResult,
) -> None:
    rev = result.revenue
    assert set(rev["basis"]) == {"history", "projection"}
    by = rev.groupby("currency")[["legacy_billed", "legacy_tax", "new_billed", "new_tax"]].sum()
    mapped = result.customers[result.customers["status"] == "mapped"]
    totals = mapped.groupby("currency")[["legacy_total", "new_total"]].sum()
    for cur, row in by.iterrows():
        assert int(row.legacy_billed + row.legacy_tax) == int(totals.loc[cur, "legacy_total"])
        assert int(row.new_billed + row.new_tax) == int(totals.loc[cur, "new_total"])
    # every projected period starts at or after the cut-over, which the page states
    assert result.cutover is not None
    proj = rev[rev["basis"] == "projection"]["month"]
    assert proj.min() >= f"{result.cutover[0]:%Y-%m}"


def test_recognized_revenue_sums_to_billings_over_the_whole_span(
    result: ReconciliationResult,
) -> None:
    rev = result.revenue
    for side in ("actual", "legacy", "new"):
        per = rev.groupby("currency")[[f"{side}_billed", f"{side}_recognized"]].sum()
        assert (per[f"{side}_billed"] == per[f"{side}_recognized"]).all(), side
    assert int(rev["actual_billed"].sum()) > 0


def test_recognition_spreads_an_annual_invoice_over_its_months() -> None:
    start = datetime(2025, 3, 15, tzinfo=UTC)
    end = datetime(2026, 3, 15, tzinfo=UTC)
    to_us = lambda d: int(d.timestamp()) * 1_000_000  # noqa: E731
    _row, month, share = recognize(
        np.array([36_500]), np.array([to_us(start)]), np.array([to_us(end)])
    )
    months = dict(zip(month_text(month), share.tolist(), strict=True))
    assert len(months) == 13 and sum(months.values()) == 36_500
    assert months["2025-04"] == 3_000 and months["2025-03"] == 1_700  # 30 and 17 of 365 days
