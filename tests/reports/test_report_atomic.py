"""A reconciliation whose report cannot be finished leaves no report that looks complete."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import shadowbill.reports.write as report_write
from shadowbill.errors import ReportError
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.write import write_reports


def _disk_full(*args: object, **kwargs: object) -> Path:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_report_folder(
    passing_result: ReconciliationResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_write, "write_junit", _disk_full)  # the last file written
    with pytest.raises(ReportError, match="No space left on device"):
        write_reports(passing_result, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # no report.html with a PASS badge, no staging


def test_a_failed_rerun_keeps_the_earlier_report_and_findings_together(
    passing_result: ReconciliationResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = {p.name: p.read_bytes() for p in write_reports(passing_result, out).values()}
    monkeypatch.setattr(report_write, "write_junit", _disk_full)
    with pytest.raises(ReportError):
        write_reports(passing_result, out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")} == first
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
