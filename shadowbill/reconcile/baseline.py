"""A previous run's results folder (the baseline) and how this run's findings compare to it.

``shadowbill check --out DIR`` writes the folder a later check reads back with
``--baseline DIR``: ``findings.parquet`` and ``summary.json`` (any ``reconcile --out``
folder has these two), plus what a scoped check needs to rebuild the whole phase from
the baseline and the re-reconciled customers: ``customers.parquet``,
``unmapped.parquet``, ``monthly.parquet`` and ``scope.json`` (phase, projection months,
pricing window). Findings are matched on their stable ids: a finding is new, resolved,
changed (same id, another amount) or unchanged.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shadowbill.errors import ReportError
from shadowbill.reconcile.findings import FINDING_COLUMNS
from shadowbill.reconcile.gate import evaluate_gate
from shadowbill.reconcile.policy import Policy
from shadowbill.reconcile.result import (
    CUSTOMER_COLUMNS,
    MONTHLY_COLUMNS,
    GateVerdict,
    ReconciliationResult,
)

FINDINGS_FILE = "findings.parquet"
SUMMARY_FILE = "summary.json"
CUSTOMERS_FILE = "customers.parquet"
UNMAPPED_FILE = "unmapped.parquet"
MONTHLY_FILE = "monthly.parquet"
SCOPE_FILE = "scope.json"
STATUSES = ("new", "resolved", "changed", "unchanged")
# What the comparison keeps of each finding: enough to count, sum and name it.
DIFF_COLUMNS = [
    "finding_id", "comparison", "level", "cause", "currency", "customer_id",
    "subscription_id", "invoice_key", "delta", "explanation",
]  # fmt: skip


class BaselineError(ReportError):
    """The baseline folder is missing or cannot be read."""


@dataclass(frozen=True)
class RunWindow:
    """The pricing window a run used; a scoped check must price in the same one."""

    as_of: pd.Timestamp
    start: pd.Timestamp | None
    end: pd.Timestamp


@dataclass(frozen=True)
class Baseline:
    """A previous run's results folder, read back."""

    path: Path
    summary: dict[str, Any]
    customers: pd.DataFrame | None  # None: not written by ``check --out``
    unmapped: pd.DataFrame | None
    monthly: pd.DataFrame | None
    scope: dict[str, Any] | None

    @property
    def findings_file(self) -> Path:
        """The baseline's findings.parquet."""
        return self.path / FINDINGS_FILE

    @property
    def fingerprints(self) -> dict[str, str]:
        """The input fingerprints the baseline recorded."""
        return {str(k): str(v) for k, v in self.summary.get("fingerprints", {}).items()}

    def window(self) -> RunWindow | None:
        """The pricing window of the baseline run, when it recorded one."""
        if not self.scope or "window" not in self.scope:
            return None
        w = self.scope["window"]
        start = w.get("start")
        return RunWindow(
            pd.Timestamp(w["as_of"]),
            None if start is None else pd.Timestamp(start),
            pd.Timestamp(w["end"]),
        )


def _read_optional(path: Path, columns: dict[str, str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    frame = pd.read_parquet(path)
    return frame.astype({c: t for c, t in columns.items() if c in frame})


def load_baseline(folder: Path) -> Baseline:
    """Read a results folder; findings.parquet and summary.json are required."""
    folder = Path(folder)
    for name in (FINDINGS_FILE, SUMMARY_FILE):
        if not (folder / name).is_file():
            raise BaselineError(
                f"{folder}: no {name} (the baseline is a previous run's --out folder)"
            )
    try:
        summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
        scope_path = folder / SCOPE_FILE
        scope = json.loads(scope_path.read_text(encoding="utf-8")) if scope_path.is_file() else None
        names = set(pq.read_schema(folder / FINDINGS_FILE).names)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise BaselineError(f"{folder}: cannot read the baseline: {exc}") from exc
    missing = sorted(set(FINDING_COLUMNS) - names)
    if missing:
        raise BaselineError(
            f"{folder / FINDINGS_FILE}: not a findings file (no {', '.join(missing)})"
        )
    if not isinstance(summary, dict) or "phase" not in summary:
        raise BaselineError(f"{folder / SUMMARY_FILE}: not a summary.json (no phase)")
    return Baseline(
        folder,
        summary,
        _read_optional(folder / CUSTOMERS_FILE, CUSTOMER_COLUMNS),
        _read_optional(folder / UNMAPPED_FILE, {}),
        _read_optional(folder / MONTHLY_FILE, MONTHLY_COLUMNS),
        scope if isinstance(scope, dict) else None,
    )


def write_results(
    result: ReconciliationResult,
    out_dir: Path,
    *,
    projection_months: int,
) -> dict[str, Path]:
    """Write the folder a later check reads as its baseline (summary.json is the caller's)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        findings = out_dir / FINDINGS_FILE
        if result.findings_file is not None:
            shutil.copyfile(result.findings_file, findings)
        else:
            result.findings.reindex(columns=list(FINDING_COLUMNS)).to_parquet(findings, index=False)
        written = {"findings_parquet": findings}
        for key, name, frame in (
            ("customers", CUSTOMERS_FILE, result.customers),
            ("unmapped", UNMAPPED_FILE, result.exceptions.get("unmapped")),
            ("monthly", MONTHLY_FILE, result.monthly),
        ):
            if frame is not None:
                frame.to_parquet(out_dir / name, index=False)
                written[key] = out_dir / name
        scope: dict[str, Any] = {"phase": int(result.phase), "projection_months": projection_months}
        if result.pricing_window is not None:
            as_of, start, end = result.pricing_window
            scope["window"] = {
                "as_of": pd.Timestamp(as_of).isoformat(),
                "start": None if start is None else pd.Timestamp(start).isoformat(),
                "end": pd.Timestamp(end).isoformat(),
            }
        (out_dir / SCOPE_FILE).write_text(json.dumps(scope, indent=2, sort_keys=True) + "\n")
        written["scope"] = out_dir / SCOPE_FILE
    except OSError as exc:
        raise ReportError(f"cannot write the results folder {out_dir}: {exc.strerror}") from exc
    return written


def _diff_table(path: Path | None, frame: pd.DataFrame | None) -> pa.Table:
    if path is not None:
        return pq.read_table(path, columns=DIFF_COLUMNS)
    assert frame is not None
    return pa.Table.from_pandas(frame[DIFF_COLUMNS], preserve_index=False)


def compare_findings(
    head_file: Path | None, baseline_file: Path, *, head: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every finding of either run with its status against the baseline.

    Columns: the finding's (``DIFF_COLUMNS``, from this run, or from the baseline for a
    resolved one), ``status`` (new, resolved, changed, unchanged) and ``baseline_delta``.
    Joined in Arrow on the stable finding id.
    """
    now = _diff_table(head_file, head)
    before = _diff_table(baseline_file, None)
    joined = now.join(
        before.select(["finding_id", "delta"]).rename_columns(["finding_id", "baseline_delta"]),
        keys="finding_id",
        join_type="left outer",
    )
    gone = before.filter(pc.invert(pc.is_in(before["finding_id"], value_set=now["finding_id"])))
    frame = joined.to_pandas()
    old = gone.to_pandas().assign(baseline_delta=lambda f: f["delta"])
    old["delta"] = pd.array([pd.NA] * len(old), dtype="Int64")
    in_base = frame["baseline_delta"].notna().to_numpy(dtype=bool)
    same = (frame["delta"].fillna(0) == frame["baseline_delta"].fillna(0)).to_numpy(dtype=bool)
    status = np.where(~in_base, "new", np.where(same, "unchanged", "changed"))
    frame["status"] = pd.array(status, dtype="string")
    old["status"] = pd.array(["resolved"] * len(old), dtype="string")
    out = pd.concat([frame, old], ignore_index=True)
    out["delta"] = out["delta"].astype("Int64")
    out["baseline_delta"] = out["baseline_delta"].astype("Int64")
    return out


def status_counts(diff: pd.DataFrame) -> dict[str, int]:
    """How many findings are new, resolved, changed and unchanged."""
    counts = diff["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUSES}


def gate_on_new(
    policy: Policy,
    result: ReconciliationResult,
    diff: pd.DataFrame,
    baseline: Baseline,
) -> GateVerdict:
    """The gate over what this run adds to the baseline (``gate_on: new``).

    Findings count only when new or changed; unmapped subscriptions only when the baseline
    had them mapped; rising customers only when they were not already rising (when the
    baseline recorded its customers and unmapped subscriptions).
    """
    fresh = diff.loc[diff["status"].isin(["new", "changed"]), "finding_id"]
    findings = result.findings[result.findings["finding_id"].isin(fresh)]
    unmapped = result.exceptions.get("unmapped")
    if unmapped is None:
        unmapped = pd.DataFrame({"subscription_id": pd.Series(dtype="string")})
    if baseline.unmapped is not None and "subscription_id" in baseline.unmapped:
        unmapped = unmapped[~unmapped["subscription_id"].isin(baseline.unmapped["subscription_id"])]
    customers = result.customers
    if baseline.customers is not None:
        cap = float(policy.increase_cap.above_percent)
        before = baseline.customers
        rising = before.loc[
            (before["status"] == "mapped").fillna(False) & (before["delta_pct"].fillna(0) > cap),
            "customer_id",
        ]
        customers = customers[~customers["customer_id"].isin(rising)]
    return evaluate_gate(policy, result.phase, findings, customers, unmapped)
