"""Shared helpers of the ledger tests: plan frames, ids, audit counts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from shadowbill.ledger import Ledger

FINGERPRINTS = {"rollout": "r" * 64, "snapshot": "s" * 64, "legacy_catalog": "l" * 64}


def plan_frame(ids: list[str], **extra: Any) -> pd.DataFrame:
    """A batch's subscriptions: one customer per two subscriptions, paid through March 2026."""
    frame = pd.DataFrame(
        {
            "subscription_id": ids,
            "customer_id": [f"cus_{i // 2:06d}" for i in range(len(ids))],
            "customer_fingerprint": [f"{i:064x}" for i in range(len(ids))],
            "paid_through": pd.Timestamp("2026-03-01", tz="UTC"),
            "first_target_period_start": pd.Timestamp("2026-03-01", tz="UTC"),
        }
    )
    for column, value in extra.items():
        frame[column] = value
    return frame


def sub_ids(n: int, prefix: str = "sub") -> list[str]:
    """n subscription ids like sub_000000."""
    return [f"{prefix}_{i:06d}" for i in range(n)]


def audit_count(ledger: Ledger) -> int:
    """Rows in the audit log."""
    return len(ledger.log())
