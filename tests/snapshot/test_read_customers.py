"""read_customers: exactly the rows a whole read holds for some customers."""

from __future__ import annotations

import pandas as pd
from demo_companies import demo_company

from shadowbill.snapshot.buckets import subscriptions_only
from shadowbill.snapshot.io import read_customers, read_snapshot


def test_read_customers_equals_the_whole_snapshot_cut_to_them() -> None:
    snapshot = demo_company(300, 12, 11).snapshot
    whole = read_snapshot(snapshot)
    people = whole["customers"]["customer_id"].iloc[::37].tolist()
    subs = whole["subscriptions"]
    expected = subscriptions_only(
        whole, subs.loc[subs["customer_id"].isin(people), "subscription_id"]
    )
    got = read_customers(snapshot, people)
    for name, frame in got.tables.items():
        want = whole["customers"] if name == "customers" else expected[name]
        if name == "customers":
            want = want[want["customer_id"].isin(people)]
        pd.testing.assert_frame_equal(frame, want.reset_index(drop=True), check_index_type=False)
    assert len(got["invoice_lines"]) > 0
    pd.testing.assert_frame_equal(got.quarantine, whole.quarantine)
