"""write_reports: every output in one folder, and typed errors when it cannot be written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadowbill.errors import ReportError
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.write import write_reports


def test_writes_every_report(passing_result: ReconciliationResult, tmp_path: Path) -> None:
    paths = write_reports(passing_result, tmp_path / "out")
    assert sorted(p.name for p in paths.values()) == [
        "customers_changing.csv",
        "finance.json",
        "findings.csv",
        "findings.parquet",
        "findings.xlsx",
        "junit.xml",
        "manifest.json",
        "report.html",
        "summary.json",
    ]
    assert all(p.parent == tmp_path / "out" and p.stat().st_size > 0 for p in paths.values())
    assert json.loads(paths["summary"].read_text())["verdict"]["passed"] is True
    finance = json.loads(paths["finance"].read_text())
    assert set(finance) == {"summary_version", "phase", "cutover", "revenue_net_of_tax", "run_rate"}
    assert "run_rate" not in json.loads(paths["summary"].read_text())  # CI's shape is kept
    assert 'href="findings.csv"' in paths["html"].read_text("utf-8")


def test_unwritable_folder_is_a_report_error(
    passing_result: ReconciliationResult, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ReportError, match="cannot write the reports into"):
        write_reports(passing_result, blocker / "out")
