"""gate_on: new: a pull request fails for the findings it causes, not for those already there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shadowbill.reconcile.baseline import (
    compare_findings,
    gate_on_new,
    load_baseline,
    write_results,
)
from shadowbill.reconcile.findings import FINDING_COLUMNS, finding_ids
from shadowbill.reconcile.gate import evaluate_gate
from shadowbill.reconcile.policy import Policy
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.summary import summary_json


def _unexplained(subscriptions: list[str]) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "comparison": "B",
            "level": "invoice",
            "customer_id": [f"c-{s}" for s in subscriptions],
            "subscription_id": subscriptions,
            "invoice_key": [f"{s}@2026-01-01" for s in subscriptions],
            "currency": "usd",
            "expected": 100,
            "actual": 150,
            "delta": 50,
            "cause": "unexplained",
            "severity": "error",
            "explanation": "no cause explains it",
        }
    )
    rows["finding_id"] = finding_ids(rows.assign(line_key=pd.NA))
    return rows.reindex(columns=list(FINDING_COLUMNS)).astype(FINDING_COLUMNS)


def _result(findings: pd.DataFrame) -> ReconciliationResult:
    return ReconciliationResult(2, "two", pd.Timestamp("2026-01-01", tz="UTC"), findings=findings)


def _baseline(tmp: Path, findings: pd.DataFrame) -> Path:
    write_results(_result(findings), tmp, projection_months=12)
    (tmp / "summary.json").write_text(summary_json(_result(findings)))
    return tmp


def test_gate_on_new_passes_over_findings_the_baseline_already_had(tmp_path: Path) -> None:
    old = _unexplained(["s1", "s2"])
    baseline = load_baseline(_baseline(tmp_path, old))
    result = _result(old)
    diff = compare_findings(None, baseline.findings_file, head=old)
    policy = Policy(gate_on="new")
    assert not evaluate_gate(
        policy, 2, old, result.customers, pd.DataFrame({"subscription_id": []})
    ).passed
    assert gate_on_new(policy, result, diff, baseline).passed


def test_gate_on_new_fails_for_a_new_or_changed_finding(tmp_path: Path) -> None:
    old = _unexplained(["s1"])
    baseline = load_baseline(_baseline(tmp_path, old))
    for now in (
        pd.concat([old, _unexplained(["s9"])], ignore_index=True),
        old.assign(delta=pd.array([70], dtype="Int64")),
    ):
        diff = compare_findings(None, baseline.findings_file, head=now)
        verdict = gate_on_new(Policy(gate_on="new"), _result(now), diff, baseline)
        assert not verdict.passed
        assert verdict.failures[0].name == "max_unexplained"
