"""Row checks over canonical frames: reasons, cascades, and conservation on random messy input."""

from __future__ import annotations

import pandas as pd
from extract_cases import BASE_ROWS, Rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowbill.extract.quarantine import REASONS
from shadowbill.extract.validate import CHARGE_KINDS, validate_tables
from shadowbill.snapshot.tables import TABLES


def frames_of(rows: Rows) -> dict[str, pd.DataFrame]:
    """Text frames (as a CSV would give) from rows; empty strings are missing values."""
    out = {}
    for name, table_rows in rows.items():
        frame = pd.DataFrame(table_rows, columns=TABLES[name].column_names, dtype="string")
        out[name] = frame.mask(frame == "")
    return out


def reasons(result, table: str) -> list[str]:
    q = result.quarantine
    return q.loc[q["table"] == table, "reason"].tolist()


def test_valid_frames_pass_typed(base_rows):
    result = validate_tables(frames_of(base_rows))
    assert result.quarantine.empty
    for name, frame in result.tables.items():
        assert list(frame.columns) == TABLES[name].column_names
        assert str(frame.dtypes[TABLES[name].columns[0].name]) == "string"
    assert result.tables["invoices"]["total"].tolist() == [10650, 12980, 390000]


def test_customer_quarantine_cascades_down_every_table(base_rows):
    base_rows["customers"][0]["segment"] = "enterprise"
    result = validate_tables(frames_of(base_rows))
    assert reasons(result, "customers") == ["invalid_enum"]
    assert reasons(result, "subscriptions") == ["parent_quarantined"]
    assert reasons(result, "subscription_items") == ["parent_quarantined"] * 2
    assert reasons(result, "discounts") == ["parent_quarantined"]
    assert reasons(result, "usage") == ["parent_quarantined"]
    assert reasons(result, "invoices") == ["parent_quarantined"]
    assert reasons(result, "invoice_lines") == ["parent_quarantined"] * 3
    sub = result.quarantine.query("table == 'subscriptions'")["detail"].iloc[0]
    assert sub == (
        "subscriptions subscription_id='S1': customer_id 'C1' names a customers row"
        " that is quarantined (invalid_enum)"
    )
    line = result.quarantine.query("table == 'invoice_lines'")["detail"].iloc[0]
    assert "invoice_id 'V1'" in line and "(parent_quarantined)" in line
    for name, c in result.counts.items():
        assert c.conserved, name


def test_a_quarantined_line_takes_its_invoice_and_siblings(base_rows):
    base_rows["invoice_lines"][4]["kind"] = "vat"  # the tax line of V2
    result = validate_tables(frames_of(base_rows))
    assert reasons(result, "invoices") == ["invoice_lines_mismatch"]
    detail = result.quarantine.query("table == 'invoices'")["detail"].iloc[0]
    assert detail == "invoices invoice_id='V2': 1 of its lines are quarantined"
    assert sorted(reasons(result, "invoice_lines")) == ["invalid_enum", "invoice_lines_mismatch"]


def test_lines_sum_uses_only_charge_kinds(base_rows):
    assert CHARGE_KINDS == ("recurring", "usage", "proration", "one_off")
    base_rows["invoice_lines"][2]["amount"] = "-1"  # discount line: not part of the subtotal
    result = validate_tables(frames_of(base_rows))
    assert result.quarantine.empty


def test_subscription_period_must_move_forward(base_rows):
    base_rows["subscriptions"][1]["current_period_end"] = "2024-03-02T00:00:00Z"
    result = validate_tables(frames_of(base_rows))
    assert reasons(result, "subscriptions") == ["period_out_of_order"]
    detail = result.quarantine.query("table == 'subscriptions'")["detail"].iloc[0]
    assert "current_period_end '2024-03-02T00:00:00Z' is not after current_period_start" in detail


def _items(*spans: tuple[str, str]) -> Rows:
    rows = [
        {
            "item_id": "I1",
            "subscription_id": "S1",
            "price_id": "p",
            "quantity": "1",
            "valid_from": f"2024-{a}T00:00:00Z",
            "valid_to": f"2024-{b}T00:00:00Z" if b else "",
        }
        for a, b in spans
    ]
    parents = {
        "customers": BASE_ROWS["customers"][:1],
        "subscriptions": BASE_ROWS["subscriptions"][:1],
    }
    return {**parents, "subscription_items": rows}


def _overlaps(rows: Rows) -> list[str]:
    result = validate_tables(frames_of(rows))
    return reasons(result, "subscription_items")


def test_item_histories_adjacent_rows_do_not_overlap():
    assert _overlaps(_items(("01-01", "02-01"), ("02-01", "03-01"), ("03-01", ""))) == []


def test_item_history_overlap_is_found_past_a_short_row():
    # A covers Jan-Oct; B (Feb) and C (Apr) are each inside A but not inside each other.
    found = _overlaps(_items(("01-01", "10-01"), ("02-01", "02-15"), ("04-01", "04-15")))
    assert found == ["overlapping_history"] * 3


def test_item_history_open_row_overlaps_a_later_one():
    assert _overlaps(_items(("01-01", ""), ("03-01", "04-01"))) == ["overlapping_history"] * 2


# ---------------------------------------------------------------- conservation ----

_TS = [
    "2024-01-01T00:00:00Z",
    "2024-02-01T00:00:00Z",
    "2024-03-01T00:00:00+01:00",
    "2024-02-01 00:00",
    "soon",
    None,
]
_KEYS = ["A", "B", "C", None]


def _value_strategy(table: str, column: str) -> st.SearchStrategy[str | None]:
    col = TABLES[table].column(column)
    if col.name in TABLES[table].key or any(
        fk.column == col.name for fk in TABLES[table].foreign_keys
    ):
        return st.sampled_from(_KEYS)
    if col.name == "item_id":
        return st.sampled_from(_KEYS)
    if col.enum is not None:
        return st.sampled_from([*col.enum[:3], "bogus", None])
    if col.name == "currency":
        return st.sampled_from(["USD", "jpy", "XXX", None])
    if col.name in ("percent_off", "percentage", "unit_amount_decimal"):
        return st.sampled_from(["10", "12.50", "0.001", "ten", None])
    kind = str(col.type)
    if kind.startswith("timestamp"):
        return st.sampled_from(_TS)
    if kind == "int64":
        return st.one_of(st.integers(-3, 5).map(str), st.sampled_from(["100", "1.5", "x", None]))
    if kind == "bool":
        return st.sampled_from(["true", "0", "maybe", None])
    return st.sampled_from(["x", "y", None])


@st.composite
def messy_frames(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, table in TABLES.items():
        n = draw(st.integers(0, 8))
        data = {c: [draw(_value_strategy(name, c)) for _ in range(n)] for c in table.column_names}
        frames[name] = pd.DataFrame(data, columns=table.column_names, dtype="string")
    return frames


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_frames())
def test_conservation_and_clean_output_on_messy_frames(frames):
    result = validate_tables(frames)
    q = result.quarantine
    assert set(q["reason"]) <= set(REASONS)
    for name, table in TABLES.items():
        c = result.counts[name]
        assert c.rows_in == len(frames[name])
        assert c.rows_in == c.rows_out + c.quarantined
        assert c.quarantined == int((q["table"] == name).sum())
        clean = result.tables[name]
        assert len(clean) == c.rows_out
        for col in table.columns:
            if col.required:
                assert clean[col.name].notna().all(), (name, col.name)
            if col.enum is not None:
                assert clean[col.name].dropna().isin(col.enum).all()
            if col.non_negative:
                assert (clean[col.name].dropna() >= 0).all()
        if table.key:
            assert not clean.duplicated(list(table.key)).any()
        for fk in table.foreign_keys:
            parents = result.tables[fk.table][TABLES[fk.table].key[0]]
            assert clean[fk.column].dropna().isin(parents).all(), (name, fk.column)
    invoices = result.tables["invoices"]
    assert (
        invoices["total"] == invoices["subtotal"] - invoices["discount"] + invoices["tax"]
    ).all()
    lines = result.tables["invoice_lines"]
    sums = lines[lines["kind"].isin(CHARGE_KINDS)].groupby("invoice_id")["amount"].sum()
    got = invoices["invoice_id"].map(sums).fillna(0).astype("int64")
    assert (got == invoices["subtotal"].astype("int64")).all()
