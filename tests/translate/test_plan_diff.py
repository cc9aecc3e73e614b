"""The structured legacy-vs-new diff of one subscription, for the report's customer view."""

from __future__ import annotations

import json

import pytest
from rollout_snapshot_builder import SnapshotBuilder

from shadowbill.errors import PlanError
from shadowbill.translate.plan_diff import plan_diff
from shadowbill.translate.rollout import Rollout
from shadowbill.translate.run import translate


def test_mapped_subscription_diff(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("s", [("pro_month_v2", 10), ("reporting_month", 1), ("sms_month", 1)])
    builder.discount("s", "seats20", percent_off="20", item_id="s-pro_month_v2")
    builder.discount("s", "rep", amount_off=300, item_id="s-reporting_month")
    snapshot = builder.build()
    diff = plan_diff(translate(snapshot, small_rollout, 2), snapshot, "s")
    json.dumps(diff)  # JSON-able, as the report stores it
    assert diff["status"] == "mapped" and diff["rule_id"] == "pro"
    assert diff["cutover_at"] == "2026-01-01"
    assert diff["legacy"]["items"] == {"pro_month_v2": 10, "reporting_month": 1, "sms_month": 1}
    assert diff["new"]["items"] == {"advanced_month": 10, "sms_tiered": 1}
    assert diff["lineage"] == [
        "pro_month_v2 x10 -> advanced_month x10 (mapped)",
        "reporting_month x1 -> - (dropped: included in Advanced)",
        "sms_month x1 -> sms_tiered x1 (item_map)",
    ]
    changes = diff["changes"]
    assert set(changes["dictionary_item_added"]) == {
        "root['items']['advanced_month']",
        "root['items']['sms_tiered']",
    }
    assert set(changes["dictionary_item_removed"]) == {
        "root['items']['pro_month_v2']",
        "root['items']['reporting_month']",
        "root['items']['sms_month']",
        "root['discounts']['rep']",  # lost with the dropped reporting item
    }
    assert changes["values_changed"] == {
        "root['discounts']['seats20']['applies_to']": {
            "new_value": "advanced_month",
            "old_value": "pro_month_v2",
        }
    }


def test_scheduled_switch_shows_in_the_schedule(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("y", [("pro_year", 3)], interval="year", started_at="2025-03-10T00:00:00Z")
    snapshot = builder.build()
    diff = plan_diff(translate(snapshot, small_rollout, 3), snapshot, "y")
    assert diff["legacy"]["items"] == diff["new"]["items"] == {"pro_year": 3}
    assert diff["new"]["schedule"] == [
        {"at": "2026-07-01", "price_id": "advanced_year", "quantity": 3}
    ]
    assert list(diff["changes"]) == ["iterable_item_added"]


def test_unmapped_and_unknown_subscriptions(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("w", [("whatsapp_month", 1)])
    snapshot = builder.build()
    plan = translate(snapshot, small_rollout, 2)
    diff = plan_diff(plan, snapshot, "w")
    assert diff["status"] == "unmapped" and diff["reason"] == "no_rule_matched"
    assert diff["new"] is None and diff["changes"] == {}
    with pytest.raises(PlanError, match="'nope' is not in the cohort of phase 2"):
        plan_diff(plan, snapshot, "nope")
