"""Planted legacy errors: recorded in the ground truth and really present in the database."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from demo_reference import LegacyBook, Line, minor

from shadowbill.demo.generate import DemoResult
from shadowbill.demo.ground_truth import ERRORS_COLUMNS
from shadowbill.demo.planted_errors import ERROR_KINDS
from shadowbill.demo.price_book import legacy_catalog_path

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def book(demo: DemoResult) -> LegacyBook:
    return LegacyBook(demo.db_path, demo.spec_path, legacy_catalog_path())


def _charges(lines: list[Line]) -> list[Line]:
    return [x for x in lines if x.kind in ("recurring", "proration", "usage")]


def test_ground_truth_file(demo: DemoResult, planted: pd.DataFrame) -> None:
    assert tuple(planted.columns) == ERRORS_COLUMNS
    counts = planted["kind"].value_counts().to_dict()
    assert set(counts) == set(ERROR_KINDS)
    assert counts == demo.error_counts
    bills = demo.table_counts["bills"]
    for kind in ERROR_KINDS:  # about 0.3% of invoices each, at least one
        assert 1 <= counts[kind] <= max(1, round(0.003 * bills)) + 1
    assert planted["invoice_id"].is_unique  # one error per invoice
    assert planted["error_id"].is_unique
    assert (planted["expected_amount"] != planted["actual_amount"]).all()
    assert (planted["line_id"] == "").tolist() == (planted["kind"] == "missing_usage_line").tolist()


def test_each_error_is_in_the_database(
    book: LegacyBook, planted: pd.DataFrame, legacy_db: object
) -> None:
    for e in planted.itertuples():
        expected = book.invoice(e.invoice_id)
        actual = book.bill_lines(e.invoice_id)
        b = book.bill(e.invoice_id)
        assert (b["plan_ref"], b["acct_no"]) == (e.subscription_id, e.customer_id)
        extra = Counter((x.kind, x.price_id, x.amount) for x in _charges(actual))
        extra.subtract(Counter((x.kind, x.price_id, x.amount) for x in _charges(expected.lines)))
        diff = {k: v for k, v in extra.items() if v}
        if e.kind == "double_charged_addon":
            assert diff == {("recurring", e.price_id, e.actual_amount): 1}
            assert e.expected_amount == 0
        elif e.kind == "stale_price":
            assert e.price_id == "pro_month_v2"
            assert diff == {
                ("recurring", e.price_id, e.actual_amount): 1,
                ("recurring", e.price_id, e.expected_amount): -1,
            }
        elif e.kind == "rounding_slip":
            assert abs(e.actual_amount - e.expected_amount) == 1
            assert diff == {
                ("usage", e.price_id, e.actual_amount): 1,
                ("usage", e.price_id, e.expected_amount): -1,
            }
        else:
            assert diff == {("usage", e.price_id, e.expected_amount): -1}
            assert e.actual_amount == 0
        if e.line_id:
            row = book.rows("SELECT * FROM bill_items WHERE item_no = ?", e.line_id)[0]
            assert row["bill_no"] == e.invoice_id
            assert minor(row["amount"], row["cur"]) == e.actual_amount


def test_erroneous_invoices_are_consistent_with_their_own_lines(
    book: LegacyBook, planted: pd.DataFrame
) -> None:
    """Discount, tax and totals follow the wrong lines, as the buggy engine's would."""
    for bill_no in planted["invoice_id"]:
        actual = book.bill_lines(bill_no)
        redone = book.finish(bill_no, _charges(actual))
        assert Counter((x.kind, x.amount) for x in actual) == Counter(
            (x.kind, x.amount) for x in redone.lines
        )
        b = book.bill(bill_no)
        totals = (b["subtotal"], b["discount_amt"], b["tax_amt"], b["total_amt"])
        assert tuple(minor(t, b["cur"]) for t in totals) == (
            redone.subtotal,
            redone.discount,
            redone.tax,
            redone.total,
        )
