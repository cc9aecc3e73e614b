"""Write every report of one reconciliation into a folder."""

from __future__ import annotations

from pathlib import Path

from shadowbill.errors import ReportError
from shadowbill.output_folder import StagedFolder
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.aggregates import check_result
from shadowbill.reports.files import write_findings
from shadowbill.reports.html import MAX_PLAN_MOVES, MAX_TABLE_ROWS, MOVERS_PER_CURRENCY, write_html
from shadowbill.reports.junit import write_junit
from shadowbill.reports.model import build_report
from shadowbill.reports.summary import write_summary


def write_reports(result: ReconciliationResult, out_dir: Path) -> dict[str, Path]:
    """Write report.html, findings.{parquet,csv,xlsx}, summary.json and junit.xml.

    They are written into a staging folder and published together
    (:class:`shadowbill.output_folder.StagedFolder`): a failed or interrupted run leaves
    the folder as it was, never a truncated report beside new findings.
    """
    check_result(result)
    try:
        with StagedFolder(out_dir) as staged:
            written = _write_all(result, staged.path)
            staged.publish()
    except OSError as exc:
        raise ReportError(f"cannot write the reports into {out_dir}: {os_text(exc)}") from exc
    return {name: staged.moved(path) for name, path in written.items()}


def os_text(exc: OSError) -> str:
    """The system's reason, e.g. "No space left on device"."""
    return exc.strerror or str(exc) or type(exc).__name__


def _write_all(result: ReconciliationResult, out_dir: Path) -> dict[str, Path]:
    report = build_report(
        result,
        table_rows=MAX_TABLE_ROWS,
        plan_moves=MAX_PLAN_MOVES,
        movers_per_currency=MOVERS_PER_CURRENCY,
    )
    parquet, csv, xlsx = write_findings(result, out_dir)
    return {
        "html": write_html(result, out_dir / "report.html", findings_href=csv.name, report=report),
        "findings_parquet": parquet,
        "findings_csv": csv,
        "findings_xlsx": xlsx,
        "summary": write_summary(report, out_dir / "summary.json"),
        "junit": write_junit(result, out_dir / "junit.xml"),
    }
