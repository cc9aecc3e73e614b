"""The findings as files: Parquet and CSV for machines, XLSX for finance.

Parquet and CSV hold the findings frame exactly (integer minor units). The workbook has
a Summary, a Findings and a Customers sheet; its money columns are numbers in major units
with a number format per currency (0 decimals JPY, 2 USD/EUR, 3 KWD), written from exact
decimals, beside the exact minor-unit integers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from shadowbill.errors import ReportError
from shadowbill.reconcile.findings import empty_findings
from shadowbill.reconcile.findings_spill import CSV_OPTIONS, csv_ready, read_batches
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports import aggregates as agg
from shadowbill.reports.communications import customers_changing
from shadowbill.reports.payload import report_customers
from shadowbill.reports.xlsx import Block, Column, Sheet, write_workbook

# Excel's sheet limit is 1,048,576 rows. The workbook is for reading: its Findings sheet
# keeps the 100,000 most severe findings (errors, then warnings, then info, largest
# differences first); findings.csv and findings.parquet always hold every finding.
MAX_SHEET_ROWS = 200_000  # customers listed in the workbook (the most important first)
MAX_FINDING_ROWS = 100_000
_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

_MONEY_TOTALS = (
    ("actual_legacy", "Actual legacy"),
    ("legacy_total", "Legacy recomputed"),
    ("new_total", "New model"),
    ("delta", "Net change"),
    ("unexplained", "Unexplained"),
    ("unmapped_legacy", "Unmapped (legacy)"),
)


def _summary_sheet(result: ReconciliationResult, notes: list[str]) -> Sheet:
    head = pd.DataFrame(
        {
            "label": ["Shadow billing reconciliation", "Generated", "Gate"],
            "value": [
                f"phase {result.phase}: {result.phase_name}",
                pd.Timestamp(result.generated_at).isoformat(),
                "PASSED" if result.verdict.passed else "FAILED",
            ],
        }
    )
    checks = pd.DataFrame(
        {
            "name": [c.name for c in result.verdict.checks],
            "result": ["pass" if c.passed else "FAIL" for c in result.verdict.checks],
            "limit": [c.limit for c in result.verdict.checks],
            "value": [c.value for c in result.verdict.checks],
            "detail": [c.detail for c in result.verdict.checks],
        },
        dtype="string",
    )
    totals = agg.currency_totals(result)
    for key, _ in _MONEY_TOTALS:
        totals[f"{key}_minor"] = totals[key]
    fingerprints = pd.DataFrame(
        {"input": list(result.fingerprints), "sha256": list(result.fingerprints.values())},
        dtype="string",
    ).sort_values("input")
    blocks = [
        Block(head, (Column("", "label", bold=True), Column("", "value")), header=False),
        Block(
            checks,
            (
                Column("Check", "name"),
                Column("Result", "result"),
                Column("Limit", "limit"),
                Column("Measured", "value"),
                Column("Detail", "detail"),
            ),
        ),
        Block(
            totals,
            (
                Column("Currency", "currency"),
                Column("Customers", "customers", "int"),
                Column("Invoices", "invoices", "int"),
                *[Column(label, key, "money", "currency") for key, label in _MONEY_TOTALS],
                *[
                    Column(f"{label} (minor units)", f"{key}_minor", "int")
                    for key, label in _MONEY_TOTALS
                ],
            ),
        ),
        Block(fingerprints, (Column("Input", "input"), Column("sha256", "sha256"))),
    ]
    if notes:
        blocks.append(Block(pd.DataFrame({"note": notes}), (Column("Notes", "note"),)))
    widths = (30, 24, 18, 22, 22, 22, 22, 18, 20, 22, 22, 22, 22, 18, 20)
    return Sheet("Summary", tuple(blocks), widths=widths)


_FINDING_COLUMNS = (
    Column("finding_id", "finding_id", width=24),
    Column("comparison", "comparison", width=6),
    Column("level", "level", width=9),
    Column("customer_id", "customer_id"),
    Column("name", "name", width=28),
    Column("subscription_id", "subscription_id"),
    Column("invoice_key", "invoice_key", width=34),
    Column("line_key", "line_key", width=30),
    Column("price_id", "price_id", width=18),
    Column("period_start", "period_start", "date", width=12),
    Column("period_end", "period_end", "date", width=12),
    Column("currency", "currency", width=8),
    Column("expected", "expected", "money", "currency", width=18),
    Column("actual", "actual", "money", "currency", width=18),
    Column("delta", "delta", "money", "currency", width=16),
    Column("cause", "cause", width=18),
    Column("severity", "severity", width=9),
    Column("explanation", "explanation", width=60),
    Column("expected_minor", "expected", "int"),
    Column("actual_minor", "actual", "int"),
    Column("delta_minor", "delta", "int"),
)

_CUSTOMER_COLUMNS = (
    Column("customer_id", "customer_id"),
    Column("name", "name", width=30),
    Column("segment", "segment", width=11),
    Column("country", "country", width=8),
    Column("legacy_plan", "legacy_plan", width=30),
    Column("new_plan", "new_plan", width=30),
    Column("rule_id", "rule_id"),
    Column("status", "status", width=10),
    Column("currency", "currency", width=8),
    Column("invoices", "invoices", "int", width=9),
    Column("legacy_total", "legacy_total", "money", "currency", width=18),
    Column("new_total", "new_total", "money", "currency", width=18),
    Column("delta", "delta", "money", "currency", width=16),
    Column("change", "change_bp", "percent", width=9),
    Column("unexplained", "unexplained", "money", "currency"),
    Column("drift", "drift", "money", "currency"),
    Column("legacy_total_minor", "legacy_total", "int"),
    Column("new_total_minor", "new_total", "int"),
    Column("delta_minor", "delta", "int"),
    Column("unexplained_minor", "unexplained", "int"),
    Column("drift_minor", "drift", "int"),
)


_CHANGING_COLUMNS = (
    Column("customer_id", "customer_id"),
    Column("name", "name", width=30),
    Column("segment", "segment", width=11),
    Column("account_owner", "account_owner", width=18),
    Column("currency", "currency", width=8),
    Column("legacy_monthly (net of tax)", "legacy_monthly_minor", "money", "currency", width=18),
    Column("new_monthly (net of tax)", "new_monthly_minor", "money", "currency", width=18),
    Column("change", "change_minor", "money", "currency", width=16),
    Column("change_percent", "change_percent", width=10),
    Column("causes", "causes", width=50),
    Column("legacy_plan", "legacy_plan", width=34),
    Column("new_plan", "new_plan", width=34),
)


def _most_severe(findings: pd.DataFrame, limit: int) -> pd.DataFrame:
    """Most severe first, largest differences first; a stable sort keeps the input order
    between equals, so the sheet is deterministic."""
    rank = findings["severity"].map(_SEVERITY_ORDER).fillna(3).to_numpy(dtype=np.int64)
    size = findings["delta"].abs().fillna(0).to_numpy(dtype=np.int64)
    return findings.iloc[np.lexsort((-size, rank))].head(limit)


def _sheet_findings(result: ReconciliationResult) -> tuple[pd.DataFrame, int]:
    """The findings for the sheet (at most MAX_FINDING_ROWS) and how many there are in all."""
    if result.findings_file is None:
        return _most_severe(result.findings, MAX_FINDING_ROWS), len(result.findings)
    return _most_severe_on_disk(result.findings_file, MAX_FINDING_ROWS)


def _most_severe_on_disk(path: Path, limit: int) -> tuple[pd.DataFrame, int]:
    """``_most_severe`` over a findings file: ranks from two columns, then only the rows kept."""
    file = pq.ParquetFile(str(path))
    keys = file.read(columns=["severity", "delta"])
    total = keys.num_rows
    if total == 0:
        return empty_findings(), 0
    order = pa.array(list(_SEVERITY_ORDER), pa.large_string())
    severity = pc.cast(keys["severity"], pa.large_string())
    rank = pc.index_in(severity, value_set=order).fill_null(len(order))
    rank = np.asarray(rank.to_numpy(), dtype=np.int64)
    size = np.abs(np.asarray(keys["delta"].fill_null(0).to_numpy(), dtype=np.int64))
    del keys, severity
    # one int64 per finding, smaller = more severe
    key = (rank << 56) | (np.int64(2**56 - 1) - np.minimum(size, 2**56 - 1))
    if total > limit:  # the limit smallest keys; ties at the edge by file order
        edge = np.partition(key, limit - 1)[limit - 1]
        below = np.flatnonzero(key < edge)
        ties = np.flatnonzero(key == edge)[: limit - len(below)]
        rows = np.sort(np.concatenate([below, ties]))
    else:
        rows = np.arange(total)
    starts = np.cumsum(
        [0, *(file.metadata.row_group(i).num_rows for i in range(file.num_row_groups))]
    )
    groups = np.searchsorted(starts, rows, side="right") - 1
    picked = [  # only the row groups holding kept rows, in file order
        file.read_row_group(int(g)).take(pa.array(rows[groups == g] - starts[g]))
        for g in np.unique(groups)
    ]
    table = pa.concat_tables(picked).combine_chunks()
    # kept rows are in file order: by severity, file order between equals
    table = table.take(pa.array(np.argsort(key[rows], kind="stable")))
    return table.to_pandas().reset_index(drop=True), total


def write_xlsx(result: ReconciliationResult, out_path: Path) -> Path:
    """Write findings.xlsx (Summary, Findings, Customers) for finance and return its path."""
    names = result.customers.drop_duplicates("customer_id").set_index("customer_id")["name"]
    findings, total = _sheet_findings(result)
    notes = []
    if total > MAX_FINDING_ROWS:
        notes.append(
            f"The Findings sheet holds the {MAX_FINDING_ROWS:,} most severe of {total:,}"
            " findings (errors, then warnings, then info; largest differences first);"
            " findings.csv and findings.parquet hold them all."
        )
    by_id = findings["customer_id"].map(names)
    if "customer_name" in findings.columns:  # the finding's own name, from the snapshot
        by_id = (
            findings["customer_name"]
            .astype("object")
            .where(findings["customer_name"].notna(), by_id)
        )
    findings = findings.assign(name=by_id)
    customers = result.customers.sort_values("customer_id", kind="stable")
    customers = customers.assign(change_bp=agg.change_basis_points(customers))
    if len(customers) > MAX_SHEET_ROWS:
        notes.append(
            f"The Customers sheet holds {MAX_SHEET_ROWS:,} of {len(customers):,} customers:"
            " every exception, then the largest changes."
        )
        customers = report_customers(customers, pd.Index([]), MAX_SHEET_ROWS)
    changing = customers_changing(result)
    sheets = (
        _summary_sheet(result, notes),
        Sheet("Findings", (Block(findings, _FINDING_COLUMNS),), freeze_header=True),
        Sheet("Customers", (Block(customers, _CUSTOMER_COLUMNS),), freeze_header=True),
        Sheet(
            "Customers changing",
            (Block(changing.head(MAX_SHEET_ROWS), _CHANGING_COLUMNS),),
            freeze_header=True,
        ),
    )
    return write_workbook(out_path, sheets)


def write_csv(frame: pd.DataFrame, out_path: Path) -> Path:
    """A frame as CSV through Arrow's writer (fast at millions of rows); times ISO UTC."""
    table = csv_ready(pa.Table.from_pandas(frame, preserve_index=False))
    pa_csv.write_csv(table, out_path, pa_csv.WriteOptions(**CSV_OPTIONS))
    return out_path


def write_csv_from_parquet(parquet: Path, out_path: Path) -> Path:
    """A findings Parquet file as the same CSV, a row group at a time (bounded memory)."""
    writer: pa_csv.CSVWriter | None = None
    try:
        for table in read_batches(parquet):
            ready = csv_ready(table)
            if writer is None:
                writer = pa_csv.CSVWriter(
                    str(out_path),
                    ready.schema,
                    write_options=pa_csv.WriteOptions(**CSV_OPTIONS),
                )
            writer.write_table(ready)
        if writer is None:  # no findings: the header alone
            empty = csv_ready(pq.read_schema(str(parquet)).empty_table())
            pa_csv.write_csv(empty, out_path, pa_csv.WriteOptions(**CSV_OPTIONS))
    finally:
        if writer is not None:
            writer.close()
    return out_path


def _place(source: Path, target: Path) -> None:
    """``target`` with ``source``'s bytes: a hard link where the file system allows (a 1M
    customer run's CSV is gigabytes), else a copy. The run's own file is never written again."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_findings(result: ReconciliationResult, out_dir: Path) -> list[Path]:
    """Write findings.parquet, findings.csv and findings.xlsx into ``out_dir``."""
    agg.check_result(result)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        parquet = out_dir / "findings.parquet"
        if result.findings_file is not None:
            _place(result.findings_file, parquet)
            csv = out_dir / "findings.csv"
            if result.findings_csv_file is not None:  # stitched from the partitions' text
                _place(result.findings_csv_file, csv)
            else:
                write_csv_from_parquet(parquet, csv)
        else:
            result.findings.to_parquet(parquet, index=False)
            csv = write_csv(result.findings, out_dir / "findings.csv")
        xlsx = write_xlsx(result, out_dir / "findings.xlsx")
    except OSError as exc:
        raise ReportError(f"cannot write the findings files in {out_dir}: {exc}") from exc
    return [parquet, csv, xlsx]
