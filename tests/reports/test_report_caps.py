"""The report lists a bounded set of customers: every exception first, then the largest changes."""

from __future__ import annotations

import pandas as pd

from shadowbill.reports.payload import report_customers


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([f"c{i}" for i in range(8)], dtype="string"),
            "status": ["mapped"] * 7 + ["unmapped"],
            "legacy_total": pd.array([100, 100, 100, 100, 100, 100, 100, None], dtype="Int64"),
            "delta": pd.array([1, -50, 3, 90, 0, 2, 0, None], dtype="Int64"),
            "unexplained": pd.array([0, 0, 0, 0, 0, 7, 0, None], dtype="Int64"),
            "drift": pd.array([0, 0, 0, 0, 4, 0, 0, None], dtype="Int64"),
        }
    )


def test_small_estates_are_listed_whole() -> None:
    c = _customers()
    assert report_customers(c, pd.Index([]), 100).equals(c)


def test_exceptions_then_largest_changes_in_the_original_order() -> None:
    kept = report_customers(_customers(), pd.Index(["c6"]), 6)
    # c4 drift, c5 unexplained, c6 detail, c7 unmapped; then |90| and |-50| beat 1 and 3
    assert kept["customer_id"].tolist() == ["c1", "c3", "c4", "c5", "c6", "c7"]
