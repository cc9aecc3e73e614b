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
from shadowbill.output_folder import IncompleteOutputError, check_complete
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
    current: bool = True  # its findings have this version's columns

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
    try:
        check_complete(folder)
    except IncompleteOutputError as exc:
        raise BaselineError(str(exc)) from None
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
    missing = [c for c in DIFF_COLUMNS if c not in names]
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
        current=names == set(FINDING_COLUMNS),
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


_KEYS = ["finding_id", "delta", "comparison", "level", "cause", "currency"]


@dataclass(frozen=True)
class FindingsDiff:
    """This run's findings against the baseline's, by stable id.

    ``changes`` holds the new, resolved and changed findings (``DIFF_COLUMNS``, from this
    run or, when resolved, from the baseline; ``status``; ``baseline_delta``); unchanged
    ones are only counted. ``net`` is comparison B per invoice, net of tax, summed per
    currency: (baseline, this run).
    """

    changes: pd.DataFrame
    unchanged: int
    net: dict[str, tuple[int, int]]

    def counts(self) -> dict[str, int]:
        """How many findings are new, resolved, changed and unchanged."""
        found = self.changes["status"].value_counts()
        return {**{s: int(found.get(s, 0)) for s in STATUSES[:3]}, "unchanged": self.unchanged}

    def ids(self, *statuses: str) -> pd.Series:
        """The finding ids of these statuses."""
        return self.changes.loc[self.changes["status"].isin(statuses), "finding_id"]


def read_diff_columns(path: Path) -> pa.Table:
    """The columns of a findings file a comparison reads (repeated texts kept as dictionaries)."""
    return pq.read_table(path, columns=DIFF_COLUMNS, read_dictionary=["explanation", "cause"])


def _table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame[DIFF_COLUMNS], preserve_index=False)


def net_of_tax(table: pa.Table) -> dict[str, int]:
    """Comparison B per invoice, every cause but tax, summed per currency."""
    keep = pc.and_(
        pc.and_(pc.equal(table["comparison"], "B"), pc.equal(table["level"], "invoice")),
        pc.not_equal(table["cause"].cast(pa.string()), "tax"),
    )
    sums = (
        table.filter(pc.fill_null(keep, False)).group_by("currency").aggregate([("delta", "sum")])
    )
    return {str(r["currency"] or ""): int(r["delta_sum"] or 0) for r in sums.to_pylist()}


def _id_numbers(ids: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Finding ids ("f" + 20 digits) as unsigned integers: joins on them are cheap."""
    return pc.cast(pc.utf8_slice_codeunits(ids, 1), pa.uint64())


def _frame(table: pa.Table) -> pd.DataFrame:
    plain = table.cast(
        pa.schema(
            [
                pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                for f in table.schema
            ]
        )
    )
    frame = plain.to_pandas(
        types_mapper=lambda t: pd.StringDtype() if pa.types.is_string(t) else None
    )
    return frame.astype({"delta": "Int64"})


def compare_tables(now: pa.Table, before: pa.Table) -> FindingsDiff:
    """Two sets of findings (``DIFF_COLUMNS``) compared by stable id, in Arrow."""
    left = pa.table(
        {
            "key": _id_numbers(now["finding_id"]),
            "delta": now["delta"],
            "_now": pa.array(np.arange(now.num_rows)),
        }
    )
    right = pa.table(
        {
            "key": _id_numbers(before["finding_id"]),
            "baseline_delta": before["delta"],
            "_before": pa.array(np.arange(before.num_rows)),
        }
    )
    joined = left.join(right, keys="key", join_type="full outer")
    in_now, in_before = pc.is_valid(joined["_now"]), pc.is_valid(joined["_before"])
    same = pc.fill_null(pc.equal(joined["delta"], joined["baseline_delta"]), False)
    unchanged = pc.and_(pc.and_(in_now, in_before), same)
    moved = joined.filter(pc.invert(unchanged))
    mine = moved.filter(pc.is_valid(moved["_now"]))
    gone = moved.filter(pc.is_null(moved["_now"]))
    rows_now = _frame(now.take(mine["_now"]))
    rows_now["status"] = pd.array(
        np.where(pc.is_valid(mine["_before"]).to_numpy(zero_copy_only=False), "changed", "new"),
        dtype="string",
    )
    rows_now["baseline_delta"] = pd.array(mine["baseline_delta"].to_pylist(), dtype="Int64")
    rows_before = _frame(before.take(gone["_before"]))
    rows_before["baseline_delta"] = rows_before["delta"]
    rows_before["delta"] = pd.array([pd.NA] * len(rows_before), dtype="Int64")
    rows_before["status"] = pd.array(["resolved"] * len(rows_before), dtype="string")
    changes = pd.concat([rows_now, rows_before], ignore_index=True)
    changes["delta"] = changes["delta"].astype("Int64")
    changes["baseline_delta"] = changes["baseline_delta"].astype("Int64")
    before_net, now_net = net_of_tax(before), net_of_tax(now)
    net = {
        c: (before_net.get(c, 0), now_net.get(c, 0)) for c in sorted(set(before_net) | set(now_net))
    }
    return FindingsDiff(changes, int(pc.sum(unchanged.cast(pa.int64())).as_py() or 0), net)


def compare_findings(
    head_file: Path | None, baseline_file: Path, *, head: pd.DataFrame | None = None
) -> FindingsDiff:
    """This run's findings (a file, or a frame) against the baseline's findings file."""
    now = (
        read_diff_columns(head_file)
        if head_file is not None
        else _table(head)
        if head is not None
        else None
    )
    assert now is not None
    return compare_tables(now, read_diff_columns(baseline_file))


def gate_on_new(
    policy: Policy,
    result: ReconciliationResult,
    diff: FindingsDiff,
    baseline: Baseline,
) -> GateVerdict:
    """The gate over what this run adds to the baseline (``gate_on: new``).

    Findings count only when new or changed; unmapped subscriptions only when the baseline
    had them mapped; rising customers only when they were not already rising (when the
    baseline recorded its customers and unmapped subscriptions).
    """
    fresh = diff.ids("new", "changed")
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
