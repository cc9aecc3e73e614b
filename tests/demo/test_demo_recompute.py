"""A few dozen legacy invoices recomputed independently, literally from docs/billing-model.md."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from demo_reference import LegacyBook, Line, minor, read_table

from shadowbill.demo.generate import DemoResult
from shadowbill.demo.price_book import legacy_catalog_path

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

PER_KIND = 6


@pytest.fixture(scope="module")
def book(demo: DemoResult) -> LegacyBook:
    return LegacyBook(demo.db_path, demo.spec_path, legacy_catalog_path())


def _sample(db: Path, planted: pd.DataFrame) -> list[str]:
    """Clean invoices covering prorations, discounts, tax, annual plans, every currency."""
    wrong = set(planted["invoice_id"])
    items = read_table(db, "bill_items")
    bills = {b["bill_no"]: b for b in read_table(db, "bills") if b["bill_no"] not in wrong}
    plans = {p["plan_ref"]: p for p in read_table(db, "plans_active")}
    by_kind: dict[str, list[str]] = {}
    for r in items:
        if r["bill_no"] in bills:
            key = r["item_type"] + ("_LINE" if r["item_text"].endswith(" seats)") else "")
            by_kind.setdefault(key, []).append(r["bill_no"])
    discounts = Counter(r["bill_no"] for r in items if r["item_type"] == "DISC")
    by_kind["DISC_BOTH"] = [n for n, c in discounts.items() if c > 1 and n in bills]
    for b in bills.values():
        by_kind.setdefault(b["cur"], []).append(b["bill_no"])
        if plans[b["plan_ref"]]["billing_cycle"] == "Y":
            by_kind.setdefault("annual", []).append(b["bill_no"])
    chosen: list[str] = []
    for key in sorted(by_kind):
        unique = sorted(set(by_kind[key]))
        step = max(1, len(unique) // PER_KIND)
        chosen += unique[::step][:PER_KIND]
    wanted = {"PRORATE", "DISC", "DISC_LINE", "DISC_BOTH", "TAX", "USAGE", "annual", "JPY", "KWD"}
    assert all(by_kind.get(k) for k in wanted), {k: len(by_kind.get(k, [])) for k in wanted}
    return sorted(set(chosen))


def _key(lines: list[Line]) -> Counter[tuple[str, str | None, int]]:
    return Counter((x.kind, x.price_id, x.amount) for x in lines)


def test_clean_invoices_match_the_document(
    demo: DemoResult, book: LegacyBook, planted: pd.DataFrame
) -> None:
    sample = _sample(demo.db_path, planted)
    assert len(sample) >= 40
    for bill_no in sample:
        expected = book.invoice(bill_no)
        actual = book.bill_lines(bill_no)
        assert _key(actual) == _key(expected.lines), bill_no
        b = book.bill(bill_no)
        totals = (b["subtotal"], b["discount_amt"], b["tax_amt"], b["total_amt"])
        assert tuple(minor(t, b["cur"]) for t in totals) == (
            expected.subtotal,
            expected.discount,
            expected.tax,
            expected.total,
        ), bill_no
