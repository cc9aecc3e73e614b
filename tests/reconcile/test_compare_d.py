"""Comparison D: the target's issued invoices against the model, and the hand-over proven."""

from __future__ import annotations

import pandas as pd

from shadowbill.reconcile.compare_d import compare_actual, handover_findings
from shadowbill.reconcile.findings import FINDING_COLUMNS


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def invoices(rows: list[tuple[str, str, str, str, int, str]]) -> pd.DataFrame:
    """(invoice, subscription, start, end, total, status) rows as a canonical invoices frame."""
    frame = pd.DataFrame(
        [
            {
                "invoice_id": i,
                "subscription_id": s,
                "customer_id": "C-" + s,
                "period_start": T(a),
                "period_end": T(b),
                "currency": "USD",
                "subtotal": total,
                "discount": 0,
                "tax": 0,
                "total": total,
                "status": status,
                "issued_at": T(a),
            }
            for i, s, a, b, total, status in rows
        ]
    )
    for col in ("period_start", "period_end", "issued_at"):
        frame[col] = frame[col].astype("datetime64[us, UTC]")
    return frame


def lines(inv: pd.DataFrame, quantity: int = 2, unit: int = 1500) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "line_id": inv["invoice_id"] + ":0",
            "invoice_id": inv["invoice_id"],
            "price_id": "seat_month",
            "kind": "recurring",
            "description": "Seats",
            "quantity": quantity,
            "unit_amount_decimal": str(unit),
            "amount": quantity * unit,
            "period_start": inv["period_start"],
            "period_end": inv["period_end"],
        }
    )
    return frame.astype({"quantity": "Int64", "amount": "Int64"})


HANDOVER = pd.DataFrame(
    {
        "subscription_id": ["S1", "S2", "S3", "S4"],
        "customer_id": ["C-S1", "C-S2", "C-S3", "C-S4"],
        "currency": ["USD"] * 4,
        "paid_through": [T("2026-03-01")] * 4,
    }
)


def test_a_clean_hand_over_has_no_finding() -> None:
    legacy = invoices([("L1", "S1", "2026-02-01", "2026-03-01", 3000, "paid")])
    target = invoices([("in_1", "S1", "2026-03-01", "2026-04-01", 3000, "paid")])
    assert handover_findings(HANDOVER.iloc[:1], legacy, target).empty


def test_a_planted_gap_and_a_planted_overlap_are_found_with_their_instants() -> None:
    legacy = invoices(
        [
            ("L2", "S2", "2026-02-01", "2026-03-01", 3000, "paid"),
            ("L3", "S3", "2026-02-01", "2026-03-01", 3000, "paid"),
        ]
    )
    target = invoices(
        [
            ("in_2", "S2", "2026-03-05", "2026-04-05", 3000, "paid"),  # gap of four days
            ("in_3", "S3", "2026-02-20", "2026-03-20", 3000, "paid"),  # overlap of nine days
        ]
    )
    found = handover_findings(HANDOVER, legacy, target)
    assert list(found.columns) == list(FINDING_COLUMNS)
    by_sub = found.set_index("subscription_id")
    assert by_sub.loc["S2", "cause"] == "handover_gap"
    assert "2026-03-01T00:00:00Z to 2026-03-05T00:00:00Z" in by_sub.loc["S2", "explanation"]
    assert by_sub.loc["S3", "cause"] == "handover_overlap"
    assert "2026-02-20T00:00:00Z to 2026-03-01T00:00:00Z" in by_sub.loc["S3", "explanation"]
    assert set(found["comparison"]) == {"D"} and found["finding_id"].is_unique


def test_a_legacy_invoice_after_the_cut_over_is_found_billed_by_both_engines() -> None:
    legacy = invoices(
        [
            ("L4a", "S4", "2026-02-01", "2026-03-01", 3000, "paid"),
            ("L4b", "S4", "2026-03-01", "2026-04-01", 3000, "open"),  # still billing in the shadow
            ("L4c", "S4", "2026-04-01", "2026-05-01", 3000, "void"),  # voided: billed nothing
        ]
    )
    target = invoices([("in_4", "S4", "2026-03-01", "2026-04-01", 3000, "paid")])
    found = handover_findings(HANDOVER, legacy, target)
    assert list(found["cause"]) == ["billed_twice"]
    assert found["explanation"].iloc[0].startswith("The legacy engine and the target both invoiced")


def test_issued_invoices_that_match_the_model_give_no_finding_and_a_price_change_is_found() -> None:
    model = invoices([("m1", "S1", "2026-03-01", "2026-04-01", 3000, "draft")])
    actual = invoices([("in_1", "S1", "2026-03-01", "2026-04-01", 3000, "paid")])
    assert compare_actual(model, lines(model), actual, lines(actual)).empty
    changed = invoices([("in_1", "S1", "2026-03-01", "2026-04-01", 3200, "paid")])
    found = compare_actual(model, lines(model), changed, lines(changed, unit=1600))
    assert not found.empty and set(found["comparison"]) == {"D"}
    line = found[found["level"] == "line"].iloc[0]
    assert (line["expected"], line["actual"], line["delta"]) == (3000, 3200, 200)
    assert line["cause"] == "price_change"
