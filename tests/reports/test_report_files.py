"""findings.parquet / .csv / .xlsx: exact frames, and a workbook finance can open."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from report_fixture import SCRIPT_NAME, build_result

from shadowbill.reconcile.findings import FINDING_COLUMNS
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.files import write_findings


@pytest.fixture(scope="module")
def result() -> ReconciliationResult:
    """A smaller failing result (all four currencies, the hostile names): openpyxl reads slowly."""
    return build_result(n_customers=80)


@pytest.fixture(scope="module")
def written(result: ReconciliationResult, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_findings(result, tmp_path_factory.mktemp("files"))


@pytest.fixture(scope="module")
def workbook(written: list[Path]) -> openpyxl.Workbook:
    return openpyxl.load_workbook(written[2])


def test_parquet_and_csv_hold_the_findings_exactly(
    written: list[Path], result: ReconciliationResult
) -> None:
    parquet, csv, _ = written
    assert [p.name for p in written] == ["findings.parquet", "findings.csv", "findings.xlsx"]
    back = pd.read_parquet(parquet)
    assert list(back.columns) == list(FINDING_COLUMNS)
    pd.testing.assert_frame_equal(back.astype(FINDING_COLUMNS), result.findings, check_dtype=True)
    text = pd.read_csv(csv, dtype={"expected": "Int64", "actual": "Int64", "delta": "Int64"})
    assert len(text) == len(result.findings)
    assert text["delta"].sum() == result.findings["delta"].sum()
    assert text["period_start"].iloc[0].endswith("Z")


def test_workbook_has_the_sheets_and_currency_formats(
    workbook: openpyxl.Workbook, result: ReconciliationResult
) -> None:
    wb = workbook
    assert wb.sheetnames == ["Summary", "Findings", "Customers", "Customers changing"]
    customers = wb["Customers"]
    header = [c.value for c in customers[1]]
    col = {name: i for i, name in enumerate(header)}
    assert customers.freeze_panes == "A2"
    expected_formats = {"JPY": "#,##0", "USD": "#,##0.00", "EUR": "#,##0.00", "KWD": "#,##0.000"}
    seen = set()
    frame = result.customers.set_index("customer_id")
    for row in customers.iter_rows(min_row=2):
        cur = row[col["currency"]].value
        cell = row[col["new_total"]]
        if cell.value is None:
            continue
        assert cell.number_format.startswith(expected_formats[cur] + ' "' + cur)
        minor = int(frame.loc[row[col["customer_id"]].value, "new_total"])
        assert row[col["new_total_minor"]].value == minor
        exp = {"JPY": 0, "USD": 2, "EUR": 2, "KWD": 3}[cur]
        assert Decimal(str(cell.value)) == Decimal(minor).scaleb(-exp)
        seen.add(cur)
    assert seen == set(expected_formats)
    assert customers.max_row == len(result.customers) + 1


def test_workbook_text_is_never_a_formula(workbook: openpyxl.Workbook) -> None:
    wb = workbook
    names = {c.value: c for c in wb["Customers"]["B"]}
    formula = names['=HYPERLINK("http://example.invalid","click")']
    assert formula.data_type == "s"
    assert SCRIPT_NAME in names


def test_summary_sheet(workbook: openpyxl.Workbook, result: ReconciliationResult) -> None:
    ws = workbook["Summary"]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    flat = [v for row in values for v in row if v is not None]
    assert "FAILED" in flat
    assert "max_unexplained" in flat and "FAIL" in flat
    for digest in result.fingerprints.values():
        assert digest in flat
    kwd = next(row for row in values if row[0] == "KWD")
    assert ws.cell(row=values.index(kwd) + 1, column=4).number_format.startswith("#,##0.000")
    assert ws["A1"].font.b


def test_findings_sheet_puts_errors_first(
    written: list[Path], result: ReconciliationResult
) -> None:
    ws = openpyxl.load_workbook(written[2], read_only=True)["Findings"]
    rows = ws.iter_rows(values_only=True)
    header = next(rows)
    severity = header.index("severity")
    first = [next(rows)[severity] for _ in range(3)]
    errors = int((result.findings["severity"] == "error").sum())
    assert first == ["error"] * min(3, errors)
    assert header[-3:] == ("expected_minor", "actual_minor", "delta_minor")
