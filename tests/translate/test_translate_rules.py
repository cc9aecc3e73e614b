"""Translation of phase 2 (ordered rules): first match, quantities, history, discounts,
price protection, and every way a subscription can end up unmapped."""

from __future__ import annotations

import pandas as pd
import pytest
from fixtures_rollout import SMALL_ROLLOUT, WriteRollout
from rollout_snapshot_builder import SnapshotBuilder

from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.plan import (
    ASSIGNMENT_COLUMNS,
    LINEAGE_COLUMNS,
    PROTECTION_COLUMNS,
    UNMAPPED_COLUMNS,
    Plan,
)
from shadowbill.translate.rollout import Catalogs, Rollout, load_rollout
from shadowbill.translate.run import translate

T = pd.Timestamp


def _items(plan: Plan, sub: str) -> list[tuple[str, int, str, str]]:
    items = plan.snapshot["subscription_items"]
    items = items[items["subscription_id"] == sub].sort_values(["price_id", "valid_from"])
    return [
        (
            r.price_id,
            int(r.quantity),
            r.valid_from.strftime("%Y-%m-%d %H:%M"),
            "open" if pd.isna(r.valid_to) else r.valid_to.strftime("%Y-%m-%d %H:%M"),
        )
        for r in items.itertuples()
    ]


def _row(frame: pd.DataFrame, sub: str) -> pd.Series:
    rows = frame[frame["subscription_id"] == sub]
    assert len(rows) == 1, f"{sub}: {len(rows)} rows"
    return rows.iloc[0]


def _translate(b: SnapshotBuilder, rollout: Rollout, phase: int = 2) -> tuple[Snapshot, Plan]:
    snapshot = b.build()
    return snapshot, translate(snapshot, rollout, phase)


def test_frames_are_pinned(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("s1", [("pro_month_v1", 3)], segment="sales")
    _, plan = _translate(builder, small_rollout)
    for frame, columns in [
        (plan.assignments, ASSIGNMENT_COLUMNS),
        (plan.protections, PROTECTION_COLUMNS),
        (plan.unmapped, UNMAPPED_COLUMNS),
        (plan.lineage, LINEAGE_COLUMNS),
    ]:
        assert list(frame.columns) == list(columns)
        assert {c: str(t) for c, t in frame.dtypes.items()} == {
            c: str(pd.Series(dtype=t).dtype) for c, t in columns.items()
        }


def test_first_matching_rule_wins(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("sales", [("pro_month_v1", 8), ("resolution_bot_month", 1)], segment="sales")
    builder.add("bot", [("pro_month_v2", 12), ("resolution_bot_month", 1), ("sms_month", 1)])
    builder.add("pro", [("pro_month_v1", 3), ("reporting_month", 1)])
    builder.add("starter", [("starter_month", 2), ("reporting_month", 1)])
    _, plan = _translate(builder, small_rollout)
    a = plan.assignments.set_index("subscription_id")
    assert a["rule_id"].to_dict() == {
        "bot": "pro_bot",
        "pro": "pro",
        "sales": "sales_pro",
        "starter": "starter",
    }
    assert a.loc["sales", "new_plan"] == "advanced_month + fin_resolution"
    assert a.loc["bot", "legacy_items"] == (
        "pro_month_v2 x12 + resolution_bot_month x1 + sms_month (metered)"
    )
    assert a.loc["bot", "new_items"] == (
        "advanced_month x12 + copilot_month x3 + fin_resolution (metered) + sms_tiered (metered)"
    )
    assert a.loc["pro", "new_items"] == "advanced_month x3"
    assert a.loc["pro", "dropped_items"] == "reporting_month (included in Advanced)"
    assert a.loc["starter", "new_items"] == "essential_month x2 + proactive_month x1"
    assert plan.cohort_size == 4 and plan.unmapped.empty
    assert _items(plan, "bot") == [
        ("advanced_month", 12, "2025-01-01 00:00", "open"),
        ("copilot_month", 3, "2025-01-01 00:00", "open"),  # ceil(12 / 5)
        ("fin_resolution", 1, "2025-01-01 00:00", "open"),
        ("sms_tiered", 1, "2025-01-01 00:00", "open"),
    ]
    items = plan.snapshot["subscription_items"]
    assert (items["item_id"] == items["subscription_id"] + ":" + items["price_id"]).all()


def test_item_history_is_translated_segment_by_segment(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("h", [])
    # Pro v1 -> v2 at a renewal (same item), then 10 -> 12 seats mid-period.
    builder.item("h", "pro_month_v1", 10, valid_to="2025-07-01T00:00:00Z", item_id="seat")
    builder.item(
        "h",
        "pro_month_v2",
        10,
        valid_from="2025-07-01T00:00:00Z",
        valid_to="2025-09-14T10:00:00Z",
        item_id="seat",
    )
    builder.item("h", "pro_month_v2", 12, valid_from="2025-09-14T10:00:00Z", item_id="seat")
    builder.item("h", "resolution_bot_month", 1, valid_from="2025-04-20T08:00:00Z", item_id="bot")
    _, plan = _translate(builder, small_rollout)
    assert _items(plan, "h") == [
        ("advanced_month", 10, "2025-01-01 00:00", "2025-09-14 10:00"),  # v1 -> v2: no change
        ("advanced_month", 12, "2025-09-14 10:00", "open"),
        ("copilot_month", 2, "2025-04-20 08:00", "2025-09-14 10:00"),
        ("copilot_month", 3, "2025-09-14 10:00", "open"),
        ("fin_resolution", 1, "2025-04-20 08:00", "open"),
    ]
    a = _row(plan.assignments, "h")
    assert a["rule_id"] == "pro_bot"
    assert a["history_rule_ids"] == "pro, pro_bot"


def test_upgrade_in_history_uses_each_states_rule(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("u", [])
    builder.item("u", "starter_month", 3, valid_to="2025-05-10T12:00:00Z", item_id="seat")
    builder.item("u", "pro_month_v1", 5, valid_from="2025-05-10T12:00:00Z", item_id="seat")
    _, plan = _translate(builder, small_rollout)
    assert _items(plan, "u") == [
        ("advanced_month", 5, "2025-05-10 12:00", "open"),
        ("essential_month", 3, "2025-01-01 00:00", "2025-05-10 12:00"),
    ]
    assert _row(plan.assignments, "u")["history_rule_ids"] == "starter, pro"
    lineage = plan.lineage[plan.lineage["subscription_id"] == "u"]
    assert lineage[["legacy_price_id", "new_price_id", "rule_id", "change"]].values.tolist() == [
        ["starter_month", "essential_month", "starter", "mapped"],
        ["pro_month_v1", "advanced_month", "pro", "mapped"],
    ]


def test_unmapped_reasons(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("no_rule", [("whatsapp_month", 1)])
    builder.add("no_map", [("pro_month_v1", 2), ("whatsapp_month", 1)])
    builder.add("chf", [("pro_month_v1", 2)], currency="CHF", country="CH")
    builder.add("quarterly", [("pro_month_v1", 2)], interval_count=3)
    builder.add("closed", [])
    builder.item("closed", "pro_month_v1", 2, valid_to="2025-06-01T00:00:00Z")
    builder.add("old", [])
    builder.item("old", "whatsapp_month", 1, valid_to="2025-03-01T00:00:00Z", item_id="w")
    builder.item("old", "pro_month_v1", 1, valid_from="2025-03-01T00:00:00Z")
    builder.add("fine", [("pro_month_v1", 2)])
    _, plan = _translate(builder, small_rollout)
    u = plan.unmapped.set_index("subscription_id")
    assert u["reason"].to_dict() == {
        "chf": "missing_currency_option",
        "closed": "no_current_items",
        "no_map": "unmapped_item",
        "no_rule": "no_rule_matched",
        "old": "history_no_rule",
        "quarterly": "interval_mismatch",
    }
    assert u.loc["no_rule", "detail"] == (
        "current items whatsapp_month (metered) match no rule of phase 2 "
        "(sales_pro, pro_bot, pro, starter)"
    )
    assert u.loc["no_map", "detail"].startswith(
        "legacy item no_map-whatsapp_month on price whatsapp_month (from 2025-01-01) is mapped "
        "by no item or drop of rule pro"
    )
    assert u.loc["chf", "detail"] == (
        "new price advanced_month has no amount in CHF (add currency_options.chf to it)"
    )
    assert u.loc["quarterly", "detail"] == (
        "licensed new price advanced_month bills every 1 month but the subscription every 3 month"
    )
    assert (
        "items whatsapp_month (metered) from 2025-01-01 to 2025-03-01 match no rule"
        in (u.loc["old", "detail"])
    )
    assert (u["customer_id"] == "c-" + u.index).all() and (u["phase"] == 2).all()
    assert plan.assignments["subscription_id"].tolist() == ["fine"]
    assert plan.cohort_size == 7
    assert set(plan.snapshot["subscriptions"]["subscription_id"]) == {"fine"}


def test_bad_quantity_is_reported(builder: SnapshotBuilder, write_rollout: WriteRollout) -> None:
    rollout = load_rollout(
        write_rollout(SMALL_ROLLOUT.replace('"ceil(seats / 5)"', '"seats - 10"'))
    )
    builder.add("few", [("pro_month_v1", 4), ("resolution_bot_month", 1)])
    builder.add("many", [("pro_month_v1", 14), ("resolution_bot_month", 1)])
    _, plan = _translate(builder, rollout)
    assert plan.unmapped["subscription_id"].tolist() == ["few"]
    assert plan.unmapped["reason"].tolist() == ["bad_quantity"]
    assert ("copilot_month", 4, "2025-01-01 00:00", "open") in _items(plan, "many")


def test_discounts_carried(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("c", [("pro_month_v1", 4), ("reporting_month", 1)])
    builder.discount("c", "whole", percent_off="10")
    builder.discount("c", "on_seats", amount_off=500, item_id="c-pro_month_v1")
    builder.discount("c", "on_reporting", percent_off="50", item_id="c-reporting_month")
    builder.discount("c", "ended", percent_off="5", ends_at="2025-03-01T00:00:00Z")
    _, plan = _translate(builder, small_rollout)
    d = plan.snapshot["discounts"].set_index("discount_id")
    assert sorted(d.index) == ["ended", "on_seats", "whole"]  # the dropped item's discount is lost
    assert d.loc["on_seats", "item_id"] == "c:advanced_month"
    assert pd.isna(d.loc["whole", "item_id"]) and pd.isna(d.loc["whole", "ends_at"])
    a = _row(plan.assignments, "c")
    assert a["discounts_policy"] == "carry"
    assert (a["discounts_carried"], a["discounts_dropped"]) == (2, 1)


def test_discounts_dropped_at_the_cutover(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("d", [("starter_month", 2)])
    builder.discount("d", "running", percent_off="20", starts_at="2025-03-01T00:00:00Z")
    builder.discount("d", "later", amount_off=100, starts_at="2026-02-01T00:00:00Z")
    builder.discount("d", "past", percent_off="5", ends_at="2025-06-01T00:00:00Z")
    _, plan = _translate(builder, small_rollout)
    d = plan.snapshot["discounts"].set_index("discount_id")
    assert sorted(d.index) == ["past", "running"]
    assert d.loc["running", "ends_at"] == T("2026-01-01T00:00:00Z")  # history kept, cut at cut-over
    assert d.loc["past", "ends_at"] == T("2025-06-01T00:00:00Z")
    a = _row(plan.assignments, "d")
    assert a["discounts_policy"] == "drop"
    assert (a["discounts_carried"], a["discounts_dropped"]) == (0, 2)


def test_price_protection_directive(builder: SnapshotBuilder, small_rollout: Rollout) -> None:
    builder.add("p", [("pro_month_v1", 5)], segment="sales")
    builder.add("q", [("pro_month_v1", 5)])
    _, plan = _translate(builder, small_rollout)
    assert plan.protections.to_dict("records") == [
        {
            "subscription_id": "p",
            "customer_id": "c-p",
            "rule_id": "sales_pro",
            "max_increase_percent": "10",
            "months": 6,
            "starts_at": T("2026-01-01T00:00:00Z"),
            "ends_at": T("2026-07-01T00:00:00Z"),
        }
    ]
    a = plan.assignments.set_index("subscription_id")
    assert a["price_protection"].to_dict() == {"p": True, "q": False}
    assert (a["cutover_at"] == T("2026-01-01T00:00:00Z")).all()


def test_cohorts_are_disjoint_and_respect_status(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("new", [("starter_month", 1)], created_at="2025-10-15T00:00:00Z")
    builder.add("monthly", [("pro_month_v1", 1)])
    builder.add("annual", [("pro_year", 1)], interval="year")
    builder.add(
        "gone", [("pro_month_v1", 1)], status="canceled", canceled_at="2025-05-01T00:00:00Z"
    )
    builder.add("leaving", [("pro_month_v1", 1)], canceled_at="2026-02-01T00:00:00Z")
    builder.add("unpaid", [("pro_month_v1", 1)], status="unpaid")
    snapshot = builder.build()
    members = {
        phase: set(translate(snapshot, small_rollout, phase).assignments["subscription_id"])
        for phase in (1, 2, 3)
    }
    assert members == {1: {"new"}, 2: {"leaving", "monthly"}, 3: {"annual"}}


def test_new_snapshot_keeps_customers_usage_and_tax_rates(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    builder.add("m", [("pro_month_v1", 1), ("resolution_bot_month", 1)])
    builder.add("x", [("whatsapp_month", 1)])
    builder.usage("m", "ai_resolutions", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", 40)
    builder.usage("x", "whatsapp_messages", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", 9)
    builder.rows["tax_rates"].append(
        {"tax_rate_id": "vat_gb", "percentage": "20", "inclusive": False, "country": "GB"}
    )
    snapshot, plan = _translate(builder, small_rollout)
    new = plan.snapshot
    assert new["customers"]["customer_id"].tolist() == ["c-m"]
    legacy_sub = snapshot["subscriptions"][snapshot["subscriptions"]["subscription_id"] == "m"]
    pd.testing.assert_frame_equal(new["subscriptions"], legacy_sub.reset_index(drop=True))
    assert new["usage"]["quantity"].tolist() == [40]
    pd.testing.assert_frame_equal(new["tax_rates"], snapshot["tax_rates"])
    assert new["invoices"].empty and new["invoice_lines"].empty
    assert new.manifest["phase"] == 2 and new.manifest["catalog"] == "demo-new"


def test_metadata_and_tenure_selectors(
    builder: SnapshotBuilder, write_rollout: WriteRollout
) -> None:
    rollout = load_rollout(
        write_rollout(
            """\
            rollout: selectors
            catalogs: {legacy: {legacy}, new: {new}}
            as_of: 2025-12-01
            phases:
              - phase: 2
                name: p
                cutover: 2026-01-01
                discounts: carry
                rules:
                  - id: gold
                    match: {metadata: {tier: gold}}
                    then: {items: [{from: '*', price: expert_month}]}
                  - id: loyal
                    match: {tenure_months: {min: 24}}
                    then: {items: [{from: '*', price: advanced_month}]}
                  - id: rest
                    then: {items: [{from: '*', price: essential_month}]}
            """
        )
    )
    for sub, tier, created in [
        ("g", "gold", "2025-01-01T00:00:00Z"),
        ("l", "silver", "2023-11-30T00:00:00Z"),  # 24 months on 2025-11-30
        ("r", "silver", "2023-12-02T00:00:00Z"),  # 23 whole months on 2025-12-01
    ]:
        builder.customer(f"c-{sub}", created_at=created, tier=tier)
        builder.subscription(sub, f"c-{sub}")
        builder.item(sub, "pro_month_v1", 1)
    _, plan = _translate(builder, rollout)
    rules = plan.assignments.set_index("subscription_id")["rule_id"].to_dict()
    assert rules == {"g": "gold", "l": "loyal", "r": "rest"}


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_demo_rollout_conserves_its_cohorts(
    builder: SnapshotBuilder, demo_rollout: Rollout, phase: int
) -> None:
    builder.add("new", [("pro_month_v2", 3)], created_at="2025-11-01T00:00:00Z")
    builder.add("m", [("pro_month_v2", 7), ("resolution_bot_month", 1), ("sms_month", 1)])
    builder.add("prem", [("premium_month", 2), ("reporting_month", 1)], segment="sales")
    builder.add("jpy", [("starter_month", 4)], currency="JPY", country="JP")
    builder.add("y", [("pro_year", 9), ("whatsapp_month", 1)], interval="year")
    snapshot = builder.build()
    plan = translate(snapshot, demo_rollout, phase)
    assert plan.cohort_size == len(plan.assignments) + len(plan.unmapped)
    assert plan.unmapped.empty
    expected = {1: ["new"], 2: ["m", "prem"], 3: ["jpy", "y"]}[phase]
    assert sorted(plan.assignments["subscription_id"]) == expected


def test_catalogs_under_review_replace_the_rollouts(
    builder: SnapshotBuilder, small_rollout: Rollout
) -> None:
    new = small_rollout.catalogs.new
    advanced = new.price("advanced_month")
    options = {c: o for c, o in advanced.currency_options.items() if c != "jpy"}
    prices = [
        p.model_copy(update={"currency_options": options}) if p.id == "advanced_month" else p
        for p in new.prices
    ]
    review = Catalogs(small_rollout.catalogs.legacy, new.model_copy(update={"prices": prices}))
    builder.add("j", [("pro_month_v1", 2)], currency="JPY", country="JP")
    snapshot = builder.build()
    assert translate(snapshot, small_rollout, 2).unmapped.empty
    plan = translate(snapshot, small_rollout, 2, catalogs=review)
    assert plan.unmapped["reason"].tolist() == ["missing_currency_option"]
