"""A paid-through already past when apply runs: backdated, anchored ahead, nothing prorated.

Stripe refuses a past billing_cycle_anchor (https://docs.stripe.com/billing/subscriptions/billing-cycle);
backdate_start_date keeps the history's start and proration_behavior=none bills nothing before
the anchor (https://docs.stripe.com/billing/subscriptions/backdating).
"""

from __future__ import annotations

import pandas as pd
import pytest
from stripe_cases import catalog_ops

from shadowbill.targets.backdating import ANCHOR_MARGIN, backdate_operations
from shadowbill.targets.model import Operation, ref
from shadowbill.targets.stripe_api import StripeTarget

NOW = pd.Timestamp("2026-12-07T21:00:00Z")


def _sub(batch: str, sid: str, anchor: pd.Timestamp, price: str = "p") -> Operation:
    return Operation(
        batch,
        f"subscription:{sid}",
        "subscription",
        {
            "customer": ref("customer:c"),
            "items": [{"price": ref(f"price:{price}"), "quantity": 1}],
            "billing_cycle_anchor": int(anchor.timestamp()),
            "proration_behavior": "none",
            "metadata": {"shadowbill_key": f"subscription:{sid}"},
        },
        {"metadata.shadowbill_key": f"subscription:{sid}"},
        subscription_id=sid,
        customer_id="c",
    )


def _subs(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subscription_id": pd.Series([r[0] for r in rows], dtype="string"),
            "interval": pd.Series([r[1] for r in rows], dtype="string"),
            "interval_count": pd.Series([1] * len(rows), dtype="Int64"),
        }
    )


def test_a_past_anchor_is_backdated_to_it_and_anchored_on_its_next_boundary_ahead() -> None:
    year = _sub("b", "Y", pd.Timestamp("2026-11-23T13:29:43Z"))
    month = _sub("b", "M", pd.Timestamp("2026-09-30T00:00:00Z"))
    ahead = _sub("b", "F", pd.Timestamp("2027-01-05T00:00:00Z"))
    ops, moved = backdate_operations(
        [year, month, ahead], _subs([("Y", "year"), ("M", "month"), ("F", "month")]), NOW
    )
    by = {o.subscription_id: o.params for o in ops}
    assert by["Y"]["backdate_start_date"] == int(pd.Timestamp("2026-11-23T13:29:43Z").timestamp())
    assert by["Y"]["billing_cycle_anchor"] == int(pd.Timestamp("2027-11-23T13:29:43Z").timestamp())
    # month-end day clamped the Stripe way: Sep 30 -> Oct 30 -> Nov 30 -> Dec 30
    assert by["M"]["billing_cycle_anchor"] == int(pd.Timestamp("2026-12-30T00:00:00Z").timestamp())
    assert by["M"]["proration_behavior"] == "none"
    assert by["F"] == ahead.params  # still ahead: untouched
    assert list(moved["subscription_id"]) == ["Y", "M"]


def test_an_anchor_within_the_margin_is_backdated_too() -> None:
    soon = _sub("b", "S", NOW + ANCHOR_MARGIN / 2)
    ops, moved = backdate_operations([soon], _subs([("S", "month")]), NOW)
    assert ops[0].params["billing_cycle_anchor"] > int((NOW + ANCHOR_MARGIN).timestamp())
    assert len(moved) == 1


@pytest.mark.server
def test_the_server_accepts_a_backdated_subscription_and_returns_its_start(
    target: StripeTarget, uid: str
) -> None:
    batch = f"b_{uid}"
    paid_through = pd.Timestamp.now(tz="UTC").floor("s") - pd.Timedelta(days=20)
    sub = _sub(batch, f"S{uid}", paid_through, price=f"advanced_month_{uid}")
    cus = Operation(
        batch,
        "customer:c",
        "customer",
        {"name": "Late", "metadata": {"shadowbill_key": f"customer:late{uid}"}},
        {"metadata.shadowbill_key": f"customer:late{uid}"},
    )
    subs = _subs([(f"S{uid}", "month")])
    ops, moved = backdate_operations(
        [*catalog_ops(batch, uid), cus, sub], subs, pd.Timestamp.now(tz="UTC")
    )
    assert len(moved) == 1
    report = target.apply(ops)
    assert report.ok, report.failed
    created = target.client.v1.subscriptions.retrieve(report.ids[sub.key])
    assert created.start_date == int(paid_through.timestamp())
    assert created.billing_cycle_anchor == int(moved["anchor"].iloc[0].timestamp())
    # without backdating the server refuses it, as Stripe does
    plain = target.apply(
        [
            cus,
            *catalog_ops(f"x{batch}", uid),
            _sub(f"x{batch}", "Z", paid_through, price=f"advanced_month_{uid}"),
        ]
    )
    assert "billing_cycle_anchor must be in the future" in next(iter(plain.failed.values())).message
