"""Phase 3: legacy prices recreated on the new platform, cut-over at renewal, and switches."""

from __future__ import annotations

import pandas as pd
from rollout_snapshot_builder import SnapshotBuilder

from shadowbill.translate.rollout import Rollout
from shadowbill.translate.run import target_price_catalog, translate

T = pd.Timestamp


def _history(plan_items: pd.DataFrame, sub: str) -> list[tuple[str, int, str, str]]:
    rows = plan_items[plan_items["subscription_id"] == sub].sort_values("valid_from")
    return [
        (
            r.price_id,
            int(r.quantity),
            r.valid_from.strftime("%Y-%m-%d"),
            "open" if pd.isna(r.valid_to) else r.valid_to.strftime("%Y-%m-%d"),
        )
        for r in rows.itertuples()
    ]


def test_legacy_prices_kept_then_switched(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add(
        "y", [("pro_year", 6), ("sms_month", 1)], interval="year", started_at="2025-03-10T00:00:00Z"
    )
    builder.add("k", [("starter_year", 2)], interval="year", started_at="2025-02-01T00:00:00Z")
    builder.discount("y", "loyal", percent_off="15", item_id="y-pro_year")
    snapshot = builder.build()
    plan = translate(snapshot, small_rollout, 3)
    assert plan.unmapped.empty
    items = plan.snapshot["subscription_items"]
    assert _history(items, "y") == [
        ("pro_year", 6, "2025-03-10", "2026-07-01"),
        ("sms_month", 1, "2025-03-10", "open"),
        ("advanced_year", 6, "2026-07-01", "open"),
    ]
    assert _history(items, "k") == [("starter_year", 2, "2025-02-01", "open")]
    a = plan.assignments.set_index("subscription_id")
    # Cut-over at the first renewal on or after 2026-01-01.
    assert a.loc["y", "cutover_at"] == T("2026-03-10T00:00:00Z")
    assert a.loc["k", "cutover_at"] == T("2026-02-01T00:00:00Z")
    assert a.loc["y", "switches"] == "pro_year -> advanced_year x6 at 2026-07-01"
    assert a.loc["y", "new_items"] == "pro_year x6 + sms_month (metered)"
    assert a.loc["k", "rule_id"] == "keep" and a.loc["k", "switches"] == ""
    # The line discount follows the seat item to its latest successor.
    d = plan.snapshot["discounts"].set_index("discount_id")
    assert d.loc["loyal", "item_id"] == "y:advanced_year"
    lineage = plan.lineage[plan.lineage["subscription_id"] == "y"]
    steps = sorted(
        (r.valid_from.strftime("%Y-%m-%d"), r.legacy_price_id, r.new_price_id, r.change)
        for r in lineage.itertuples()
    )
    assert steps == [
        ("2025-03-10", "pro_year", "pro_year", "recreated"),
        ("2025-03-10", "sms_month", "sms_month", "recreated"),
        ("2026-07-01", "pro_year", "advanced_year", "switched"),
        ("2026-07-01", "sms_month", "sms_month", "recreated"),
    ]


def test_recreated_prices_are_priced_by_the_target_catalog(
    builder: SnapshotBuilder, demo_rollout: Rollout
) -> None:
    builder.add("j", [("pro_month_v2", 3), ("whatsapp_month", 1)], currency="JPY", country="JP")
    builder.add("w", [("reporting_year", 1), ("premium_year", 4)], interval="year")
    plan = translate(builder.build(), demo_rollout, 3)
    assert plan.unmapped.empty
    target = target_price_catalog(demo_rollout)
    items = plan.snapshot["subscription_items"].merge(
        plan.snapshot["subscriptions"][["subscription_id", "currency"]], on="subscription_id"
    )
    for price_id, currency in set(zip(items["price_id"], items["currency"], strict=True)):
        terms = target.price_terms(price_id, currency)  # raises when it cannot be priced
        assert terms.price_id == price_id
    assert target.engine == demo_rollout.catalogs.new.engine


def test_demo_switch_at_the_first_renewal_after_july(
    builder: SnapshotBuilder, demo_rollout: Rollout
) -> None:
    builder.add(
        "j", [("pro_month_v2", 3)], currency="JPY", country="JP", started_at="2025-01-20T09:00:00Z"
    )
    builder.add("y", [("premium_year", 4)], interval="year", started_at="2025-09-05T00:00:00Z")
    plan = translate(builder.build(), demo_rollout, 3)
    items = plan.snapshot["subscription_items"]
    assert _history(items, "j") == [
        ("pro_month_v2", 3, "2025-01-20", "2026-07-20"),
        ("advanced_month", 3, "2026-07-20", "open"),
    ]
    assert _history(items, "y") == [
        ("premium_year", 4, "2025-09-05", "2026-09-05"),
        ("expert_year", 4, "2026-09-05", "open"),
    ]
    a = plan.assignments.set_index("subscription_id")
    assert a.loc["j", "cutover_at"] == T("2026-01-20T09:00:00Z")
    assert a.loc["y", "cutover_at"] == T("2026-09-05T00:00:00Z")


def test_switch_before_the_cutover_is_unmapped(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    # Renews on 2026-09-01: later than the fixed switch date of 2026-07-01.
    builder.add("late", [("pro_year", 2)], interval="year", started_at="2025-09-01T00:00:00Z")
    plan = translate(builder.build(), small_rollout, 3)
    assert plan.assignments.empty
    row = plan.unmapped.iloc[0]
    assert row["reason"] == "switch_before_cutover"
    assert row["detail"] == (
        "the switch to advanced_year (2026-07-01) comes before the subscription's cut-over"
    )


def test_unknown_legacy_price_cannot_be_recreated(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("m", [("mystery_price", 1), ("starter_year", 1)], interval="year")
    plan = translate(builder.build(), small_rollout, 3)
    row = plan.unmapped.iloc[0]
    assert (row["subscription_id"], row["reason"]) == ("m", "unknown_price")
    assert row["detail"] == "price mystery_price is not in catalog 'demo-new'"
