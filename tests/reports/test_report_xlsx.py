"""The vectorized XLSX writer: exact decimals, column letters, a file openpyxl reads."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowbill.reports.xlsx import (
    Block,
    Column,
    Sheet,
    column_letter,
    decimal_text,
    write_workbook,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**62), 2**62), st.sampled_from([0, 2, 3, 4])), min_size=1))
def test_decimal_text_is_exact(values: list[tuple[int, int]]) -> None:
    minor = np.array([v for v, _ in values], dtype=np.int64)
    exps = np.array([e for _, e in values], dtype=np.int64)
    for text, (v, e) in zip(decimal_text(minor, exps).to_pylist(), values, strict=True):
        assert Decimal(text) == Decimal(v).scaleb(-e)
        assert text.count(".") == (1 if e else 0)


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]


def test_workbook_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": pd.array(["a & b", "<x>", None, "tab\there\x01", "=1+1"], dtype="string"),
            "n": pd.array([1, None, -3, 4, 5], dtype="Int64"),
            "amount": pd.array([12345, -1, 0, None, 7], dtype="Int64"),
            "currency": ["USD", "JPY", "KWD", "EUR", "usd"],
            "bp": pd.array([1234, -5, 0, None, 10000], dtype="Int64"),
            "when": pd.to_datetime(
                ["2025-01-01", "2025-01-01T12:00", None, "2024-02-29", "2025-12-31"],
                utc=True,
                format="ISO8601",
            ),
        }
    )
    columns = (
        Column("Text", "text"),
        Column("N", "n", "int"),
        Column("Amount", "amount", "money", "currency"),
        Column("Cur", "currency"),
        Column("Change", "bp", "percent"),
        Column("When", "when", "date"),
    )
    path = write_workbook(
        tmp_path / "t.xlsx", [Sheet("Data & more", (Block(frame, columns),), True)]
    )
    ws = openpyxl.load_workbook(path)["Data & more"]
    rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert rows[0] == ["Text", "N", "Amount", "Cur", "Change", "When"]
    assert rows[1][:5] == ["a & b", 1, 123.45, "USD", 0.1234]
    assert rows[2][:5] == ["<x>", None, -1, "JPY", -0.0005]
    assert rows[3][:5] == [None, -3, 0, "KWD", 0]
    assert rows[4][0] == "tab\there\ufffd" and rows[4][2] is None
    assert rows[5][0] == "=1+1" and ws["A6"].data_type == "s"
    assert rows[1][5] == pd.Timestamp("2025-01-01").to_pydatetime()
    assert rows[2][5] == pd.Timestamp("2025-01-01T12:00").to_pydatetime()
    assert ws["C2"].number_format == '#,##0.00 "USD";-#,##0.00 "USD"'
    assert ws["C3"].number_format == '#,##0 "JPY";-#,##0 "JPY"'
    assert ws["C4"].number_format == '#,##0.000 "KWD";-#,##0.000 "KWD"'
    assert ws["C6"].number_format.startswith("#,##0.00 ")  # lower-case code normalised
    assert ws["E2"].number_format == "0.00%"
    assert ws["A1"].font.b and ws.freeze_panes == "A2"
