"""summary.json: the machine-readable totals and verdict of one phase's reconciliation.

Rendered from the report model (:meth:`ReportData.summary_dict`). Deterministic: keys
sorted, amounts integer minor units per currency, and no timestamp other than the
result's own ``generated_at``, so that golden files stay stable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shadowbill.errors import ReportError
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.model import SUMMARY_VERSION, ReportData, build_report

__all__ = [
    "SUMMARY_VERSION",
    "build_summary",
    "finance_json",
    "summary_json",
    "write_finance",
    "write_summary",
]


def _model(source: ReconciliationResult | ReportData) -> ReportData:
    return source if isinstance(source, ReportData) else build_report(source)


def build_summary(source: ReconciliationResult | ReportData) -> dict[str, Any]:
    """The phase's verdict, counts, totals per currency and findings, as plain JSON data."""
    return _model(source).summary_dict()


def summary_json(source: ReconciliationResult | ReportData) -> str:
    """summary.json's exact text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build_summary(source), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_summary(source: ReconciliationResult | ReportData, out_path: Path) -> Path:
    """Write summary.json for CI and dashboards and return its path."""
    text = summary_json(source)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the summary {out_path}: {exc.strerror}") from exc
    return out_path


def finance_json(report: ReportData) -> str:
    """finance.json's exact text: revenue net of tax (history, projection, together) and the
    run-rate at the cut-over per currency, in minor units; sorted keys."""
    data = {
        "summary_version": SUMMARY_VERSION,
        "phase": report.phase,
        **report.finance.summary_dict(),
    }
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_finance(report: ReportData, out_path: Path) -> Path:
    """Write finance.json beside summary.json (summary.json keeps its shape for CI)."""
    try:
        out_path.write_text(finance_json(report), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {out_path}: {exc.strerror}") from exc
    return out_path
