"""Comparison B where a metered item starts mid-period (an upgrade onto a plan with usage)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pricing_builders import item, snapshot, subscription, usage

from shadowbill.reconcile.compare_b import Sides, attribute_invoices
from shadowbill.reconcile.phase_part import plan_bounds, price_sides, window_of
from shadowbill.translate.rollout import Rollout, load_rollout
from shadowbill.translate.run import translate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_company"
ROLLOUT = f"""\
rollout: metered-start
catalogs:
  legacy: {EXAMPLES / "legacy_catalog.yaml"}
  new: {EXAMPLES / "new_catalog.yaml"}
as_of: 2025-08-01
seat_prices: ["pro_*"]
phases:
  - phase: 1
    name: everyone
    cutover: 2025-09-01
    discounts: carry
    item_map:
      - {{from: sms_month, price: sms_tiered}}
    rules:
      - id: pro
        match: {{prices: {{any: "pro_month_*"}}}}
        then:
          items:
            - {{from: "pro_month_*", price: advanced_month}}
"""


@pytest.fixture
def rollout(tmp_path: Path) -> Rollout:
    """A one-phase rollout over the demo catalogs: Pro to Advanced, SMS to tiered SMS."""
    path = tmp_path / "rollout.yaml"
    path.write_text(ROLLOUT, encoding="utf-8")
    return load_rollout(path, strict=True)


def test_a_metered_item_starting_mid_period_is_attributed_in_that_period(
    rollout: Rollout,
) -> None:
    """The SMS add-on starts on 20 Mar inside the period opened on 10 Mar: its usage line
    bills that whole period and its price change is a price change there, as later on."""
    snap = snapshot(
        subscriptions=[subscription("s1", started_at="2025-01-10T00:00:00Z")],
        subscription_items=[
            item("s1-pro", "pro_month_v1", 3, valid_from="2025-01-10T00:00:00Z"),
            item("s1-sms", "sms_month", 1, valid_from="2025-03-20T00:00:00Z"),
        ],
        usage=[usage("sms_messages", f"2025-{m:02d}-10T00:00:00Z", 5000) for m in range(3, 8)],
    )
    as_of = pd.Timestamp("2025-08-01", tz="UTC")
    plan = translate(snap, rollout, 1, as_of=as_of)
    sides = price_sides(snap, plan, rollout, window_of(as_of, [plan_bounds(plan, snap)], 0))
    attributed = attribute_invoices(
        Sides(
            (sides.l0.invoices, sides.l0.lines),
            (sides.l1.invoices, sides.l1.lines),
            (sides.new.invoices, sides.new.lines),
        ),
        plan.lineage,
    )
    with_usage = attributed[attributed["period_start"] >= pd.Timestamp("2025-03-10", tz="UTC")]
    assert len(with_usage) == 5
    assert (with_usage["delta"] != 0).all()
    assert (with_usage["unexplained"] == 0).all()
    assert (with_usage["price_change"] == with_usage["delta"]).all()
