"""Comparison A names each kind of legacy billing error with its cause."""

from __future__ import annotations

import pandas as pd

from shadowbill.reconcile.compare_a import compare_legacy_drift

T0 = pd.Timestamp("2025-03-01", tz="UTC")
T1 = pd.Timestamp("2025-04-01", tz="UTC")


def _invoice(
    inv: str, sub: str, lines: list[tuple[str, str, str, int, str, int]]
) -> tuple[dict, list[dict]]:
    rows = []
    for i, (line_id, kind, price, qty, unit, amount) in enumerate(lines):
        rows.append(
            {
                "line_id": f"{inv}-{line_id}-{i}",
                "invoice_id": inv,
                "price_id": price,
                "kind": kind,
                "description": None,
                "quantity": qty,
                "unit_amount_decimal": unit,
                "amount": amount,
                "period_start": T0,
                "period_end": T1,
            }
        )
    subtotal = sum(r["amount"] for r in rows)
    head = {
        "invoice_id": inv,
        "subscription_id": sub,
        "customer_id": "cus_" + sub,
        "period_start": T0,
        "period_end": T1,
        "currency": "USD",
        "subtotal": subtotal,
        "discount": 0,
        "tax": 0,
        "total": subtotal,
        "status": "paid",
        "issued_at": T1,
    }
    return head, rows


def _frames(invoices: list[tuple[dict, list[dict]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    heads = pd.DataFrame([h for h, _ in invoices]).astype(
        {"subtotal": "Int64", "discount": "Int64", "tax": "Int64", "total": "Int64"}
    )
    lines = pd.DataFrame([r for _, rows in invoices for r in rows]).astype(
        {"quantity": "Int64", "amount": "Int64"}
    )
    for frame in (heads, lines):
        for col in frame.columns:
            if frame[col].dtype == object:
                frame[col] = frame[col].astype("string")
    return heads, lines


SEATS = ("s", "recurring", "pro", 10, "9900", 99000)
ADDON = ("a", "recurring", "bot", 1, "4900", 4900)
SMS = ("u", "usage", "sms", 1001, "0.75", 751)


def test_clean_history_has_no_findings() -> None:
    exp = _frames([_invoice("e1", "sub1", [SEATS, ADDON, SMS])])
    act = _frames([_invoice("L1", "sub1", [SEATS, ADDON, SMS])])
    assert compare_legacy_drift(*act, *exp).empty


def test_each_planted_error_gets_its_cause() -> None:
    expected = _frames(
        [
            _invoice("e1", "dup", [SEATS, ADDON]),
            _invoice("e2", "stale", [SEATS]),
            _invoice("e3", "slip", [SEATS, SMS]),
            _invoice("e4", "miss", [SEATS, SMS]),
            _invoice("e5", "fine", [SEATS, SMS]),
        ]
    )
    actual = _frames(
        [
            _invoice("L1", "dup", [SEATS, ADDON, ADDON]),
            _invoice("L2", "stale", [("s", "recurring", "pro", 10, "8900", 89000)]),
            _invoice("L3", "slip", [SEATS, ("u", "usage", "sms", 1001, "0.75", 752)]),
            _invoice("L4", "miss", [SEATS]),
            _invoice("L5", "fine", [SEATS, SMS]),
        ]
    )
    found = compare_legacy_drift(*actual, *expected)
    invoices = found[found["level"] == "invoice"].set_index("subscription_id")
    assert set(invoices.index) == {"dup", "stale", "slip", "miss"}
    assert invoices.loc["dup", "cause"] == "extra_line"
    assert invoices.loc["dup", "delta"] == 4900
    assert invoices.loc["stale", "cause"] == "price_change"
    assert invoices.loc["stale", "delta"] == -10000
    assert invoices.loc["slip", "cause"] == "rounding"
    assert invoices.loc["miss", "cause"] == "missing_line"
    assert invoices.loc["miss", "delta"] == -751
    assert set(invoices["actual_invoice_id"]) == {"L1", "L2", "L3", "L4"}
    # ids are stable from run to run
    again = compare_legacy_drift(*actual, *expected)
    assert again["finding_id"].tolist() == found["finding_id"].tolist()
    assert found["finding_id"].is_unique


def test_invoice_missing_on_one_side() -> None:
    expected = _frames([_invoice("e1", "a", [SEATS]), _invoice("e2", "b", [SEATS])])
    actual = _frames([_invoice("L1", "a", [SEATS])])
    found = compare_legacy_drift(*actual, *expected)
    inv = found[found["level"] == "invoice"]
    assert inv["subscription_id"].tolist() == ["b"]
    assert inv["cause"].tolist() == ["missing_line"]
    assert int(inv["delta"].iloc[0]) == -99000


def test_comparison_c_names_the_targets_differences() -> None:
    from shadowbill.reconcile.compare_c import compare_cutover

    model = _frames([_invoice("m1", "sub1", [SEATS, ADDON, SMS]), _invoice("m2", "sub2", [SEATS])])
    preview = _frames([_invoice("p1", "sub1", [SEATS, SMS]), _invoice("p2", "sub2", [SEATS])])
    found = compare_cutover(*model, *preview)
    assert set(found["comparison"]) == {"C"}
    inv = found[found["level"] == "invoice"]
    assert inv["subscription_id"].tolist() == ["sub1"]
    assert inv["cause"].tolist() == ["missing_line"]
    assert int(inv["delta"].iloc[0]) == -4900
    assert "the target's preview did not bill" in inv["explanation"].iloc[0]
    assert compare_cutover(*model, *model).empty


def test_a_line_without_price_or_quantity_is_named_by_its_description() -> None:
    """A one-off charge has no price and no quantity: the explanation names its
    description, never 'one_off  x' (issue 14, item 9)."""
    expected = _frames([_invoice("e1", "sub1", [SEATS])])
    heads, lines = _frames([_invoice("L1", "sub1", [SEATS, ("f", "one_off", "", 0, "", 5000)])])
    one_off = lines["kind"] == "one_off"
    lines.loc[one_off, ["price_id", "unit_amount_decimal", "description"]] = [
        pd.NA,
        pd.NA,
        "Setup fee",
    ]
    lines.loc[one_off, "quantity"] = pd.NA
    found = compare_legacy_drift(heads, lines, *expected)
    line = found[found["level"] == "line"]
    assert line["explanation"].tolist() == [
        'legacy billed a line the model does not produce: one_off "Setup fee"'
    ]
