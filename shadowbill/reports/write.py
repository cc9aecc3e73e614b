"""Write every report of one reconciliation into a folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shadowbill.errors import ReportError
from shadowbill.output_folder import StagedFolder
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.aggregates import check_result
from shadowbill.reports.communications import customers_changing, write_customers_changing
from shadowbill.reports.files import write_findings
from shadowbill.reports.html import MAX_PLAN_MOVES, MAX_TABLE_ROWS, MOVERS_PER_CURRENCY, write_html
from shadowbill.reports.junit import write_junit
from shadowbill.reports.model import build_report
from shadowbill.reports.rates import Reporting, load_rates, reporting_view
from shadowbill.reports.signoff import write_manifest
from shadowbill.reports.summary import write_finance, write_summary


def write_reports(
    result: ReconciliationResult, out_dir: Path, *, rates: Path | None = None
) -> dict[str, Path]:
    """Write report.html, findings.{parquet,csv,xlsx}, summary.json, finance.json,
    junit.xml and customers_changing.csv; with ``rates`` (a rates CSV), the page adds a
    reporting-currency view.

    They are written into a staging folder and published together
    (:class:`shadowbill.output_folder.StagedFolder`): a failed or interrupted run leaves
    the folder as it was, never a truncated report beside new findings. Sign-offs already
    recorded in the folder (signoff.json) stay, and the page shows those of these inputs.
    """
    check_result(result)
    try:
        with StagedFolder(out_dir) as staged:
            written = _write_all(result, staged.path, Path(out_dir), rates)
            staged.publish()
    except OSError as exc:
        raise ReportError(f"cannot write the reports into {out_dir}: {os_text(exc)}") from exc
    return {name: staged.moved(path) for name, path in written.items()}


def os_text(exc: OSError) -> str:
    """The system's reason, e.g. "No space left on device"."""
    return exc.strerror or str(exc) or type(exc).__name__


def _write_all(
    result: ReconciliationResult, out_dir: Path, final_dir: Path, rates: Path | None
) -> dict[str, Path]:
    report = build_report(
        result,
        table_rows=MAX_TABLE_ROWS,
        plan_moves=MAX_PLAN_MOVES,
        movers_per_currency=MOVERS_PER_CURRENCY,
    )
    reporting: Reporting | None = None
    if rates is not None:
        finance = report.finance
        when = finance.cutover_first if finance.cutover_first is not None else report.generated_at
        reporting = reporting_view(finance, load_rates(rates), pd.Timestamp(when).date())
    parquet, csv, xlsx = write_findings(result, out_dir)
    written = {
        "html": write_html(
            result,
            out_dir / "report.html",
            findings_href=csv.name,
            report=report,
            reporting=reporting,
            signoff_dir=final_dir,
        ),
        "findings_parquet": parquet,
        "findings_csv": csv,
        "findings_xlsx": xlsx,
        "summary": write_summary(report, out_dir / "summary.json"),
        "junit": write_junit(result, out_dir / "junit.xml"),
        "customers_changing": write_customers_changing(
            customers_changing(result), out_dir / "customers_changing.csv"
        ),
    }
    written["finance"] = write_finance(report, out_dir / "finance.json")
    written["manifest"] = write_manifest(out_dir)
    return written
