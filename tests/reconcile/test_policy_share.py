"""A policy limit as a share of the cohort (issue 16, point 8): the same increase cap holds
for 2,000 or 100,000 customers, where an absolute count cannot."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from shadowbill.demo.run import examples_dir
from shadowbill.errors import PolicyError
from shadowbill.reconcile.gate import evaluate_gate
from shadowbill.reconcile.policy import IncreaseCap, Policy, load_policy
from shadowbill.reconcile.result import CUSTOMER_COLUMNS, empty_frame


def _customers(n: int, rising: int) -> pd.DataFrame:
    frame = empty_frame(CUSTOMER_COLUMNS).reindex(range(n))
    frame["customer_id"] = [f"c{i}" for i in range(n)]
    frame["status"] = "mapped"
    frame["delta_pct"] = [50.0] * rising + [1.0] * (n - rising)
    return frame.astype(CUSTOMER_COLUMNS)


def _cap(policy: Policy, customers: pd.DataFrame) -> bool:
    findings = pd.DataFrame(columns=["comparison", "level", "cause", "delta", "customer_id"])
    unmapped = pd.DataFrame(columns=["subscription_id", "customer_id", "reason"])
    verdict = evaluate_gate(policy, 2, findings, customers, unmapped)
    return next(c for c in verdict.checks if c.name == "increase_cap").passed


@pytest.mark.parametrize(("n", "rising"), [(2_000, 40), (100_000, 710)])
def test_a_share_holds_at_any_size_where_a_count_does_not(n: int, rising: int) -> None:
    share = Policy(increase_cap=IncreaseCap(above_percent=Decimal(40), max_share=Decimal(5)))
    count = Policy(increase_cap=IncreaseCap(above_percent=Decimal(40), max_customers=250))
    assert _cap(share, _customers(n, rising))
    assert _cap(count, _customers(n, rising)) == (rising <= 250)


def test_every_limit_given_must_hold_and_none_means_none_may_rise() -> None:
    both = IncreaseCap(max_customers=10, max_share=Decimal(50))
    assert both.allows(10, 100) and not both.allows(11, 100)
    assert not IncreaseCap(max_share=Decimal("0.5")).allows(1, 100)
    assert IncreaseCap(max_share=Decimal(1)).allows(1, 100)
    assert IncreaseCap().allows(0, 5) and not IncreaseCap().allows(1, 5)
    assert "5% of the mapped customers" in IncreaseCap(max_share=Decimal(5)).describe()


def test_a_share_above_100_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "policy.yaml"
    path.write_text("increase_cap:\n  max_share: 150\n")
    with pytest.raises(PolicyError, match="max_share"):
        load_policy(path)


def test_the_shipped_policy_caps_increases_by_share() -> None:
    policy = load_policy(examples_dir() / "policy.yaml")
    assert policy.increase_cap.max_share is not None
    assert policy.increase_cap.max_customers is None
