"""Invariants of translation on random snapshots: nothing is dropped, nothing is counted
twice, and the new item history is well formed and covers the legacy history."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rollout_snapshot_builder import SnapshotBuilder

from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.cohort import eligible_subscriptions, resolve_as_of
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Rollout
from shadowbill.translate.run import translate

PRICES = [
    "starter_month",
    "starter_year",
    "pro_month_v1",
    "pro_month_v2",
    "pro_year",
    "premium_month",
    "premium_year",
    "resolution_bot_month",
    "resolution_bot_year",
    "reporting_month",
    "reporting_year",
    "sms_month",
    "whatsapp_month",
    "ai_resolution_month",
    "mystery_price",  # in no catalog
]
DAY = pd.Timedelta(days=1)
BASE = pd.Timestamp("2025-01-01T00:00:00Z")

item_strategy = st.tuples(
    st.sampled_from(PRICES),
    st.integers(0, 40),  # quantity
    st.integers(0, 200),  # start day
    st.none() | st.integers(1, 200),  # days until a change (a new row) or an end
    st.booleans(),  # the change ends the item (True) or changes its quantity
)
subscription_strategy = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(["self_serve", "sales"]),
        "currency": st.sampled_from(["USD", "EUR", "JPY", "KWD", "CHF"]),
        "interval": st.sampled_from(["month", "year"]),
        "status": st.sampled_from(["active", "active", "trialing", "past_due", "canceled"]),
        "created_day": st.integers(-700, 330),
        "canceled_day": st.none() | st.integers(100, 500),
        "items": st.lists(item_strategy, max_size=4),
    }
)


def _snapshot(subs: list[dict[str, Any]]) -> Snapshot:
    b = SnapshotBuilder()
    for i, s in enumerate(subs):
        sid = f"s{i:03d}"
        created = BASE + s["created_day"] * DAY
        b.customer(
            f"c{i:03d}",
            segment=s["segment"],
            currency=s["currency"],
            created_at=created.isoformat(),
        )
        canceled = (
            None if s["canceled_day"] is None else (BASE + s["canceled_day"] * DAY).isoformat()
        )
        b.subscription(
            sid,
            f"c{i:03d}",
            status=s["status"],
            interval=s["interval"],
            started_at=BASE.isoformat(),
            canceled_at=canceled,
            currency=s["currency"],
        )
        for k, (price, qty, start, change, ends) in enumerate(s["items"]):
            item_id = f"{sid}-{k}"
            t0 = BASE + start * DAY
            if change is None:
                b.item(sid, price, qty, valid_from=t0.isoformat(), item_id=item_id)
                continue
            t1 = t0 + change * DAY + pd.Timedelta(hours=5)
            b.item(
                sid, price, qty, valid_from=t0.isoformat(), valid_to=t1.isoformat(), item_id=item_id
            )
            if not ends:
                b.item(sid, price, qty + 1, valid_from=t1.isoformat(), item_id=item_id)
    return b.build()


def _check_plan(plan: Plan, snapshot: Snapshot) -> None:
    mapped = set(plan.assignments["subscription_id"])
    unmapped = set(plan.unmapped["subscription_id"])
    assert not mapped & unmapped
    assert plan.cohort_size == len(mapped) + len(unmapped)
    assert (
        plan.assignments["subscription_id"].is_unique and plan.unmapped["subscription_id"].is_unique
    )
    assert plan.assignments["rule_id"].notna().all() and (plan.unmapped["reason"] != "").all()

    new = plan.snapshot
    items = new["subscription_items"]
    assert set(items["subscription_id"]) <= mapped
    assert set(new["subscriptions"]["subscription_id"]) == mapped
    assert not items.duplicated(["item_id", "valid_from"]).any()
    closed = items["valid_to"].notna()
    assert (items.loc[closed, "valid_from"] < items.loc[closed, "valid_to"]).all()
    assert (items["quantity"] >= 0).all()
    # Rows of one item never overlap.
    ordered = items.sort_values(["item_id", "valid_from"])
    same = ordered["item_id"] == ordered["item_id"].shift(1)
    previous_end = ordered["valid_to"].shift(1)
    assert not (same & (previous_end.isna() | (previous_end > ordered["valid_from"]))).any()
    # The new history starts where the legacy history starts, and never before.
    legacy = snapshot["subscription_items"]
    first_legacy = legacy.groupby("subscription_id")["valid_from"].min()
    first_new = items.groupby("subscription_id")["valid_from"].min()
    assert (first_new >= first_legacy.reindex(first_new.index)).all()
    # Every successor named by the lineage exists in the new items.
    successors = plan.lineage.dropna(subset=["new_item_id"])
    assert set(successors["new_item_id"]) <= set(items["item_id"])
    # Discounts only for mapped subscriptions, pointing at new items.
    discounts = new["discounts"]
    assert set(discounts["subscription_id"]) <= mapped
    assert set(discounts["item_id"].dropna()) <= set(items["item_id"])


@pytest.mark.parametrize("rollout_name", ["demo_rollout", "small_rollout"])
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(subs=st.lists(subscription_strategy, min_size=0, max_size=30))
def test_every_cohort_subscription_is_mapped_or_listed_exactly_once(
    rollout_name: str, subs: list[dict[str, Any]], request: pytest.FixtureRequest
) -> None:
    rollout: Rollout = request.getfixturevalue(rollout_name)
    snapshot = _snapshot(subs)
    if snapshot["subscription_items"].empty and rollout.spec.as_of is None:
        return  # no date to evaluate cohorts at (a RolloutError, tested elsewhere)
    as_of = resolve_as_of(snapshot, rollout)
    eligible = set(eligible_subscriptions(snapshot, rollout, as_of)["subscription_id"])
    seen: set[str] = set()
    for phase in (p.phase for p in rollout.spec.phases):
        plan = translate(snapshot, rollout, phase)
        _check_plan(plan, snapshot)
        members = set(plan.assignments["subscription_id"]) | set(plan.unmapped["subscription_id"])
        assert not members & seen  # at most one phase
        seen |= members
    assert seen == eligible  # the last phase takes the rest: nothing is dropped
