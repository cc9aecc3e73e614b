"""What one reconciliation of a phase produces: plain frames the reports render.

The reconciler fills a :class:`ReconciliationResult`; the writers in
``shadowbill.reports`` turn it into HTML, CSV/Parquet/XLSX, JSON and JUnit without
knowing how it was computed. Money columns are ``Int64`` minor units of the row's
``currency``; totals are never added across currencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shadowbill.reconcile.findings import empty_findings
from shadowbill.reconcile.revenue import BRIDGE_COLUMNS, REVENUE_COLUMNS, RUN_RATE_COLUMNS

# One row per customer (and currency) of the phase's cohort.
CUSTOMER_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "name": "string",  # user-controlled: always escaped when rendered
    "segment": "string",
    "country": "string",
    "currency": "string",
    "legacy_plan": "string",  # e.g. "pro_month_v2 + resolution_bot_month"
    "new_plan": "string",  # e.g. "advanced_month + fin_resolution"; empty when unmapped
    "rule_id": "string",  # the rollout rule that matched; empty when unmapped
    "status": "string",  # "mapped" | "unmapped"
    "invoices": "Int64",  # invoices compared
    "legacy_total": "Int64",  # legacy model recomputed, over the compared periods
    "new_total": "Int64",  # new model, same periods
    "delta": "Int64",  # new_total - legacy_total
    "delta_pct": "Float64",  # percent change (12.5 = +12.5%), for display and policy; not money
    "unexplained": "Int64",  # part of delta no cause explains
    "drift": "Int64",  # comparison A: actual legacy - recomputed legacy
}

# The waterfall from legacy total to new total, per customer: steps add up exactly.
WATERFALL_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "currency": "string",
    "step": "Int64",  # order of the step; 0 = legacy total, last = new total
    "cause": "string",  # "legacy_total", a Cause value, or "new_total"
    "amount": "Int64",
    "explanation": "string",
}

# Revenue per calendar month (of period_start) and currency, mapped subscriptions only.
MONTHLY_COLUMNS: dict[str, str] = {
    "month": "string",  # "2025-03"
    "currency": "string",
    "actual_legacy": "Int64",  # issued legacy invoices
    "legacy_total": "Int64",  # legacy recomputed
    "new_total": "Int64",  # new model
}

# Legacy plan -> new plan movements.
PLAN_MOVE_COLUMNS: dict[str, str] = {
    "legacy_plan": "string",
    "new_plan": "string",
    "currency": "string",
    "customers": "Int64",
    "legacy_total": "Int64",
    "new_total": "Int64",
    "delta": "Int64",
}

# Side-by-side invoice lines for the customers the report can open.
LINE_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "subscription_id": "string",
    "invoice_key": "string",
    "period_start": "datetime64[us, UTC]",
    "side": "string",  # "legacy" (recomputed) | "new" | "actual" (issued legacy)
    "kind": "string",
    "price_id": "string",
    "description": "string",
    "quantity": "Int64",
    "amount": "Int64",
    "currency": "string",
    "explain": "string",
}


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame with pinned columns."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


@dataclass(frozen=True)
class GateCheck:
    """One rule of the gate policy and how the phase fared against it."""

    name: str  # e.g. "max_unexplained"
    passed: bool
    limit: str  # the policy's limit, as written
    value: str  # what was measured
    detail: str  # one sentence for a person; names customers where few


@dataclass(frozen=True)
class GateVerdict:
    """Pass or fail for CI, with the checks that decided it."""

    passed: bool
    checks: tuple[GateCheck, ...] = ()

    @property
    def failures(self) -> list[GateCheck]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]


@dataclass
class ReconciliationResult:
    """Everything one reconciliation of one rollout phase produced."""

    phase: int
    phase_name: str
    generated_at: pd.Timestamp
    findings: pd.DataFrame = field(default_factory=empty_findings)
    customers: pd.DataFrame = field(default_factory=lambda: empty_frame(CUSTOMER_COLUMNS))
    waterfall: pd.DataFrame = field(default_factory=lambda: empty_frame(WATERFALL_COLUMNS))
    monthly: pd.DataFrame = field(default_factory=lambda: empty_frame(MONTHLY_COLUMNS))
    plan_moves: pd.DataFrame = field(default_factory=lambda: empty_frame(PLAN_MOVE_COLUMNS))
    lines: pd.DataFrame = field(default_factory=lambda: empty_frame(LINE_COLUMNS))
    # Net of tax: billings and recognized revenue per month, segment and basis (history |
    # projection), the run-rate at the cut-over per customer, and its bridge per currency.
    revenue: pd.DataFrame = field(default_factory=lambda: empty_frame(REVENUE_COLUMNS))
    run_rate: pd.DataFrame = field(default_factory=lambda: empty_frame(RUN_RATE_COLUMNS))
    bridge: pd.DataFrame = field(default_factory=lambda: empty_frame(BRIDGE_COLUMNS))
    # The earliest and latest cut-over of the phase's mapped subscriptions.
    cutover: tuple[pd.Timestamp, pd.Timestamp] | None = None
    # Names people use: price id -> catalog nickname; rule id -> the rule's description.
    price_names: dict[str, str] = field(default_factory=dict)
    rule_descriptions: dict[str, str] = field(default_factory=dict)
    # "unmapped" (subscription_id, customer_id, reason), "quarantined" (the snapshot's
    # quarantine frame), "unexplained" and "drift" (findings subsets).
    exceptions: dict[str, pd.DataFrame] = field(default_factory=dict)
    # Per-subscription structured legacy-vs-new diff (deepdiff output, JSON-able).
    diffs: dict[str, Any] = field(default_factory=dict)
    verdict: GateVerdict = field(default_factory=lambda: GateVerdict(True))
    # sha256 of each input: "snapshot", "legacy_catalog", "new_catalog", "rollout", "policy".
    fingerprints: dict[str, str] = field(default_factory=dict)
    # Counts that do not fit a frame: cohort size, invoices compared, quarantined rows...
    counts: dict[str, int] = field(default_factory=dict)
    # Large runs keep every finding on disk: then ``findings_file`` is the Parquet file of
    # all findings, ``findings`` holds only those the gate reads (``gate.gate_relevant``:
    # comparison A, unexplained, causes the phase forbids), and
    # ``finding_stats`` has the counts of all of them (FindingStats.as_summary's shape).
    findings_file: Path | None = None
    findings_csv_file: Path | None = None  # the same findings as CSV, when already written
    finding_stats: dict[str, Any] | None = None
    # The pricing window every partition shared: (as_of, first period start, end).
    pricing_window: tuple[pd.Timestamp, pd.Timestamp | None, pd.Timestamp] | None = None
    # Keeps the run's working folder (the findings file) alive as long as the result.
    workdir: Any = field(default=None, repr=False, compare=False)

    def all_findings(self) -> pd.DataFrame:
        """Every finding in memory (reads the findings file of a large run: mind its size)."""
        if self.findings_file is None:
            return self.findings
        return pd.read_parquet(self.findings_file)
