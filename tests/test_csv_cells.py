"""CSV outputs never hand a spreadsheet a formula (OWASP CSV injection guidance).

https://owasp.org/www-community/attacks/CSV_Injection: a cell beginning with ``=``, ``+``,
``-``, ``@``, tab or carriage return is prefixed with a single quote.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from shadowbill.csv_cells import (
    FORMULA_TRIGGERS,
    neutralise_frame,
    neutralise_table,
    neutralise_text,
)
from shadowbill.reconcile.findings import empty_findings
from shadowbill.reconcile.findings_spill import csv_header, csv_rows, findings_schema
from shadowbill.reports.files import write_csv

HOSTILE = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def _findings(ids: list[str]) -> pd.DataFrame:
    frame = empty_findings()
    n = len(ids)
    rows = {c: pd.Series([None] * n, dtype=frame[c].dtype) for c in frame.columns}
    rows["customer_id"] = pd.Series(ids, dtype="string")
    rows["explanation"] = pd.Series(ids[::-1], dtype="string")
    rows["delta"] = pd.Series([-1200] * n, dtype="Int64")
    return pd.DataFrame(rows)


def _cells(text: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.decode("utf-8"), newline="")))


def test_findings_csv_rows_prefix_every_hostile_text_cell_and_leave_numbers() -> None:
    findings = _findings([*HOSTILE, "cus_ok"])
    table = pa.Table.from_pandas(findings, schema=findings_schema(), preserve_index=False)
    rows = _cells(csv_header(table.schema) + csv_rows(table))
    header, body = rows[0], rows[1:]
    customer, explanation, delta = (
        header.index(c) for c in ("customer_id", "explanation", "delta")
    )
    assert [r[customer] for r in body] == [*("'" + h for h in HOSTILE), "cus_ok"]
    assert [r[explanation] for r in body][-1] == "'" + HOSTILE[0]
    assert {r[delta] for r in body} == {"-1200"}  # a negative amount is a number, not text
    assert all(not cell.startswith(FORMULA_TRIGGERS) for r in body for cell in r if cell != "-1200")


def test_write_csv_neutralises_the_arrow_path(tmp_path: Path) -> None:
    out = write_csv(_findings(["=cmd|' /C calc'!A0"]), tmp_path / "findings.csv")
    body = _cells(out.read_bytes())[1]
    assert "'=cmd|' /C calc'!A0" in body and "-1200" in body


def test_a_table_without_hostile_cells_is_unchanged() -> None:
    table = pa.table({"a": ["x", None, "y-z"], "n": [-1, 2, 3]})
    assert neutralise_table(table) is table
    frame = pd.DataFrame({"a": ["x", None], "n": [-1, 2]})
    assert neutralise_frame(frame) is frame


def test_neutralise_frame_escapes_text_in_object_and_string_columns_only() -> None:
    frame = pd.DataFrame(
        {
            "obj": ["=1", 5, None],
            "s": pd.array(["-x", None, "ok"], dtype="string"),
            "n": [-1, -2, -3],
        }
    )
    out = neutralise_frame(frame)
    assert out["obj"].tolist()[:2] == ["'=1", 5] and pd.isna(out["obj"].iloc[2])
    assert out["s"].tolist()[0] == "'-x" and out["s"].tolist()[2] == "ok"
    assert out["n"].tolist() == [-1, -2, -3]


@given(hs.lists(hs.one_of(hs.none(), hs.text(max_size=6)), max_size=20))
def test_arrow_and_pandas_paths_agree_and_no_cell_starts_a_formula(values: list) -> None:
    table = neutralise_table(pa.table({"t": pa.array(values, pa.string())}))
    frame = neutralise_frame(pd.DataFrame({"t": pd.array(values, dtype="string")}))
    arrow = table["t"].to_pylist()
    assert arrow == [None if v is pd.NA else v for v in frame["t"].astype(object).tolist()]
    for before, after in zip(values, arrow, strict=True):
        if before is None:
            assert after is None
        else:
            assert after == neutralise_text(before)
            assert not after.startswith(FORMULA_TRIGGERS)
            assert after.removeprefix("'") == before or after == before


@pytest.mark.parametrize("style", ["needed", "all_valid"])
def test_a_neutralised_cell_reads_back_as_text_with_the_quote(style: str) -> None:
    sink = io.BytesIO()
    table = neutralise_table(pa.table({"t": ["=1+1"]}))
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(quoting_style=style))
    assert _cells(sink.getvalue())[1] == ["'=1+1"]
