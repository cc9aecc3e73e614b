"""summary.json: the machine-readable totals and verdict of one phase's reconciliation.

Deterministic: keys sorted, amounts integer minor units per currency, and no timestamp
other than the result's own ``generated_at``, so that golden files stay stable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from shadowbill.errors import ReportError
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports import aggregates as agg

SUMMARY_VERSION = 1


def _totals(result: ReconciliationResult) -> dict[str, dict[str, int]]:
    totals = agg.currency_totals(result)
    out: dict[str, dict[str, int]] = {}
    for r in totals.itertuples(index=False):  # one row per currency
        out[str(r.currency)] = {
            "customers": agg.as_int(r.customers),
            "unmapped_customers": agg.as_int(r.unmapped),
            "invoices": agg.as_int(r.invoices),
            "legacy": agg.as_int(r.legacy_total),
            "new": agg.as_int(r.new_total),
            "delta": agg.as_int(r.delta),
            "unmapped_legacy": agg.as_int(r.unmapped_legacy),
            "actual_legacy": agg.as_int(r.actual_legacy),
            "drift": agg.as_int(r.drift),
            "unexplained": agg.as_int(r.unexplained),
            "customers_up": agg.as_int(r.up),
            "customers_down": agg.as_int(r.down),
            "customers_unchanged": agg.as_int(r.unchanged),
        }
    return out


def build_summary(result: ReconciliationResult) -> dict[str, Any]:
    """The phase's verdict, counts, totals per currency and findings, as plain JSON data."""
    agg.check_result(result)
    c = result.customers
    direction = agg.change_direction(c)
    exceptions = agg.exception_frames(result)
    unexplained = exceptions["unexplained"]
    status = c["status"].astype("string")
    return {
        "summary_version": SUMMARY_VERSION,
        "phase": int(result.phase),
        "phase_name": str(result.phase_name),
        "generated_at": pd.Timestamp(result.generated_at).isoformat(),
        "verdict": {
            "passed": bool(result.verdict.passed),
            "failed_checks": [check.name for check in result.verdict.failures],
            "checks": [
                {
                    "name": check.name,
                    "passed": bool(check.passed),
                    "limit": check.limit,
                    "value": check.value,
                    "detail": check.detail,
                }
                for check in result.verdict.checks
            ],
        },
        "counts": {str(k): int(v) for k, v in result.counts.items()},
        "customers": {
            "total": len(c),
            "mapped": int((status == "mapped").sum()),
            "unmapped": int((status != "mapped").fillna(True).sum()),
            "up": int(direction["up"].sum()),
            "down": int(direction["down"].sum()),
            "unchanged": int(direction["unchanged"].sum()),
        },
        "invoices": agg.as_int(c["invoices"].sum()),
        "totals": _totals(result),
        "change_distribution": {
            str(r.bucket): agg.as_int(r.customers)
            for r in agg.change_histogram(c).itertuples(index=False)
        },
        "findings": agg.finding_stats(result),
        "unexplained": {
            "findings": len(unexplained),
            "customers": int((c["unexplained"].fillna(0) != 0).sum()),
            "amount": agg.unexplained_amounts(c),
        },
        "exceptions": {name: len(frame) for name, frame in exceptions.items()},
        "fingerprints": {str(k): str(v) for k, v in result.fingerprints.items()},
    }


def summary_json(result: ReconciliationResult) -> str:
    """summary.json's exact text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build_summary(result), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_summary(result: ReconciliationResult, out_path: Path) -> Path:
    """Write summary.json for CI and dashboards and return its path."""
    text = summary_json(result)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the summary {out_path}: {exc.strerror}") from exc
    return out_path
