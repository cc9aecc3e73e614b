"""Reconcile one rollout phase: translate, price both models, compare, explain, gate.

``reconcile_phase`` is the library call behind ``shadowbill reconcile`` and
``shadowbill check``; it returns a :class:`ReconciliationResult` that the writers in
``shadowbill.reports`` render.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.mappings.plan import Plan
from shadowbill.mappings.plan_diff import plan_diff
from shadowbill.mappings.policy import Policy, load_policy
from shadowbill.mappings.rollout import Rollout, load_rollout, target_price_catalog
from shadowbill.mappings.translate import translate
from shadowbill.reconcile.compare_a import compare_legacy_drift, finish_findings
from shadowbill.reconcile.compare_b import CAUSE_ORDER, Sides, attribute_invoices, positions
from shadowbill.reconcile.gate import evaluate_gate
from shadowbill.reconcile.line_match import invoice_key
from shadowbill.reconcile.periods import add_months
from shadowbill.reconcile.pricing import PricedInvoices, price
from shadowbill.reconcile.projection import project_usage
from shadowbill.reconcile.protection import protection_discounts, with_discounts
from shadowbill.reconcile.result import (
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    MONTHLY_COLUMNS,
    PLAN_MOVE_COLUMNS,
    WATERFALL_COLUMNS,
    ReconciliationResult,
)
from shadowbill.snapshot_io import file_sha256, read_snapshot, snapshot_fingerprint
from shadowbill.tables import Snapshot

_CAUSE_TEXT = {
    "proration_method": "the new engine prorates by the second, the legacy engine by whole days",
    "rounding": "the new engine rounds discounts and tax per line, the legacy engine per invoice",
    "price_change": "new prices: ",
    "quantity_transform": "quantities transformed by rule ",
    "removed_item": "legacy items removed or replaced by usage: ",
    "new_usage_charge": "new usage charges: ",
    "discount_carried": "legacy discounts carried over, applied to the new amounts",
    "discount_lost": "legacy discounts dropped at the cut-over by rule ",
    "price_protection": "price protection caps the increase",
    "tax": "tax on the changed amounts",
    "unexplained": "no cause explains this part of the difference",
}


@dataclass(frozen=True)
class Options:
    """Knobs of a reconciliation run."""

    projection_months: int = 12  # periods priced after the last cut-over
    detail_customers: int = 300  # customers whose invoices the report can open
    diff_customers: int = 60  # of those, customers with a structured legacy-vs-new diff


def _member(values: pd.Series, universe: pa.Array) -> np.ndarray:
    return positions(values, universe) >= 0


def _restrict(snapshot: Snapshot, subscription_ids: pd.Series) -> Snapshot:
    """The snapshot's rows of these subscriptions only (customers and tax rates kept whole)."""
    ids = pc.unique(pa.array(subscription_ids.astype("string"), type=pa.string()))
    tables = {}
    for name, frame in snapshot.tables.items():
        if "subscription_id" in frame.columns:
            tables[name] = frame[_member(frame["subscription_id"], ids)]
        elif name != "invoice_lines":
            tables[name] = frame
    invoice_ids = pa.array(tables["invoices"]["invoice_id"].astype("string"), type=pa.string())
    lines = snapshot["invoice_lines"]
    tables["invoice_lines"] = lines[_member(lines["invoice_id"], invoice_ids)]
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)


def _window(
    snapshot: Snapshot, plan: Plan, months: int
) -> tuple[pd.Timestamp | None, pd.Timestamp]:
    invoices = snapshot["invoices"]
    start = invoices["period_start"].min() if len(invoices) else None
    last = plan.assignments["cutover_at"].max()
    base = plan.as_of if pd.isna(last) else max(pd.Timestamp(last), plan.as_of)
    base_us = np.array([pd.Timestamp(base).value // 1000], dtype=np.int64)
    end = pd.Timestamp(int(add_months(base_us, np.array([months]))[0]) * 1000, tz="UTC")
    return (None if pd.isna(start) else pd.Timestamp(start)), end


def _severity(cause: pd.Series, delta: pd.Series, policy: Policy) -> np.ndarray:
    """Unexplained is an error; a difference above the policy's materiality a warning."""
    material = (delta.abs() > policy.materiality.absolute).to_numpy(dtype=bool)
    return np.where(cause == "unexplained", "error", np.where(material, "warning", "info"))


def _customer_findings(
    waterfall: pd.DataFrame, customers: pd.DataFrame, policy: Policy
) -> pd.DataFrame:
    """Comparison B per customer and cause: the waterfall's steps as findings."""
    steps = waterfall[waterfall["cause"].isin(CAUSE_ORDER)]
    totals = customers[customers["status"] == "mapped"].set_index(["customer_id", "currency"])
    key = pd.MultiIndex.from_frame(steps[["customer_id", "currency"]])
    frame = pd.DataFrame(
        {
            "comparison": "B",
            "level": "customer",
            "customer_id": steps["customer_id"].to_numpy(),
            "subscription_id": pd.NA,
            "invoice_key": pd.NA,
            "period_start": pd.Series(pd.NaT, index=range(len(steps)), dtype="datetime64[us, UTC]"),
            "period_end": pd.Series(pd.NaT, index=range(len(steps)), dtype="datetime64[us, UTC]"),
            "line_key": pd.NA,
            "price_id": pd.NA,
            "currency": steps["currency"].to_numpy(),
            "expected": totals["legacy_total"].reindex(key).to_numpy(),
            "actual": totals["new_total"].reindex(key).to_numpy(),
            "delta": steps["amount"].to_numpy(),
            "cause": steps["cause"].to_numpy(),
            "explanation": steps["explanation"].to_numpy(),
        }
    )
    frame["severity"] = _severity(frame["cause"], frame["delta"], policy)
    frame["subscription_id"] = frame["customer_id"]  # keeps finding ids distinct per customer
    return finish_findings(frame)


_DETAIL = {  # the assignment column that completes each cause's sentence
    "price_change": ("legacy_plan", "new_plan"),
    "quantity_transform": ("rule_id",),
    "removed_item": ("dropped_items",),
    "new_usage_charge": ("new_items",),
    "discount_lost": ("rule_id",),
}


def _b_findings(attributed: pd.DataFrame, plan: Plan, policy: Policy) -> pd.DataFrame:
    """Comparison B per invoice and cause: one finding for every non-zero cause amount."""
    base = [
        "subscription_id",
        "customer_id",
        "currency",
        "period_start",
        "period_end",
        "legacy_total",
        "new_total",
    ]
    assignments = plan.assignments
    subs = pa.array(assignments["subscription_id"].astype("string"), type=pa.string())
    parts = []
    for cause in CAUSE_ORDER:
        nonzero = attributed[cause].to_numpy() != 0
        if not nonzero.any():
            continue
        part = attributed.loc[nonzero, base].assign(
            cause=cause, delta=attributed.loc[nonzero, cause]
        )
        text = pd.Series(_CAUSE_TEXT[cause], index=part.index, dtype="string")
        if cause in _DETAIL:
            at = positions(part["subscription_id"], subs)
            found = at >= 0
            words = [
                assignments[col].astype("string").fillna("").to_numpy()[at]
                for col in _DETAIL[cause]
            ]
            detail = words[0] if len(words) == 1 else words[0] + " -> " + words[1]
            text = text + pd.Series(np.where(found, detail, ""), index=part.index, dtype="string")
        parts.append(part.assign(explanation=text))
    long = (
        pd.concat(parts, ignore_index=True)
        if parts
        else attributed.loc[[], base].assign(cause="", delta=0, explanation="")
    )
    sub = long["subscription_id"]
    frame = pd.DataFrame(
        {
            "comparison": "B",
            "level": "invoice",
            "customer_id": long["customer_id"],
            "subscription_id": sub,
            "invoice_key": invoice_key(sub, long["period_start"]),
            "period_start": long["period_start"],
            "period_end": long["period_end"],
            "line_key": pd.NA,
            "price_id": pd.NA,
            "currency": long["currency"],
            "expected": long["legacy_total"],
            "actual": long["new_total"],
            "delta": long["delta"],
            "cause": long["cause"],
            "explanation": long["explanation"],
        }
    )
    frame["severity"] = _severity(frame["cause"], frame["delta"], policy)
    return finish_findings(frame)


def _customers(
    snapshot: Snapshot, plan: Plan, attributed: pd.DataFrame, drift: pd.DataFrame
) -> pd.DataFrame:
    per = (
        attributed.assign(unexplained=attributed["unexplained"].abs())
        .groupby(["customer_id", "currency"])
        .agg(
            invoices=("period_start", "size"),
            legacy_total=("legacy_total", "sum"),
            new_total=("new_total", "sum"),
            unexplained=("unexplained", "sum"),
        )
    )
    per = per.reset_index()
    cust = snapshot["customers"].set_index("customer_id")
    per["name"] = cust["name"].reindex(per["customer_id"]).to_numpy()
    per["segment"] = cust["segment"].reindex(per["customer_id"]).to_numpy()
    per["country"] = cust["country"].reindex(per["customer_id"]).to_numpy()
    a = plan.assignments.drop_duplicates("customer_id").set_index("customer_id")
    for col in ("legacy_plan", "new_plan", "rule_id"):
        per[col] = a[col].reindex(per["customer_id"]).to_numpy()
    per["status"] = "mapped"
    per["delta"] = per["new_total"] - per["legacy_total"]
    base = per["legacy_total"].astype("float64").where(per["legacy_total"] != 0)
    per["delta_pct"] = (per["delta"].astype("float64") / base * 100).round(2)
    drift_sum = (
        drift.groupby("customer_id")["delta"].sum() if len(drift) else pd.Series(dtype="int64")
    )
    per["drift"] = drift_sum.reindex(per["customer_id"]).fillna(0).astype("int64").to_numpy()
    unmapped = plan.unmapped.merge(
        snapshot["customers"][["customer_id", "name", "segment", "country", "currency"]],
        on="customer_id",
        how="left",
    )
    unmapped_rows = pd.DataFrame(
        {
            "customer_id": unmapped["customer_id"],
            "name": unmapped["name"],
            "segment": unmapped["segment"],
            "country": unmapped["country"],
            "currency": unmapped["currency"],
            "status": "unmapped",
        }
    )
    out = pd.concat([per, unmapped_rows], ignore_index=True)
    return out.reindex(columns=list(CUSTOMER_COLUMNS)).astype(CUSTOMER_COLUMNS)


def _waterfall(attributed: pd.DataFrame) -> pd.DataFrame:
    per = attributed.groupby(["customer_id", "currency"])[
        ["legacy_total", *CAUSE_ORDER, "new_total"]
    ].sum()
    long = per.reset_index().melt(
        id_vars=["customer_id", "currency"], var_name="cause", value_name="amount"
    )
    order = {c: i for i, c in enumerate(["legacy_total", *CAUSE_ORDER, "new_total"])}
    long["step"] = long["cause"].map(order)
    keep = long["cause"].isin(["legacy_total", "new_total"]) | (long["amount"] != 0)
    long = long[keep].sort_values(["customer_id", "currency", "step"], kind="stable")
    long["explanation"] = long["cause"].map(
        {**_CAUSE_TEXT, "legacy_total": "legacy model, recomputed", "new_total": "new model"}
    )
    return (
        long.reindex(columns=list(WATERFALL_COLUMNS))
        .astype(WATERFALL_COLUMNS)
        .reset_index(drop=True)
    )


def _monthly(actual: pd.DataFrame, legacy: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    def by_month(frame: pd.DataFrame, name: str) -> pd.Series:
        month = frame["period_start"].dt.strftime("%Y-%m")
        return (
            frame.groupby([month.rename("month"), frame["currency"].str.upper()])["total"]
            .sum()
            .rename(name)
        )

    out = pd.concat(
        [
            by_month(actual, "actual_legacy"),
            by_month(legacy, "legacy_total"),
            by_month(new, "new_total"),
        ],
        axis=1,
    )
    out = out.fillna(0).reset_index().rename(columns={"level_1": "currency"})
    return out.reindex(columns=list(MONTHLY_COLUMNS)).astype(MONTHLY_COLUMNS)


def _plan_moves(customers: pd.DataFrame) -> pd.DataFrame:
    mapped = customers[customers["status"] == "mapped"]
    out = mapped.groupby(["legacy_plan", "new_plan", "currency"], dropna=False).agg(
        customers=("customer_id", "nunique"),
        legacy_total=("legacy_total", "sum"),
        new_total=("new_total", "sum"),
    )
    out = out.reset_index()
    out["delta"] = out["new_total"] - out["legacy_total"]
    return out.reindex(columns=list(PLAN_MOVE_COLUMNS)).astype(PLAN_MOVE_COLUMNS)


def _detail_customers(customers: pd.DataFrame, findings: pd.DataFrame, limit: int) -> pd.Index:
    mapped = customers[customers["status"] == "mapped"].sort_values("delta", kind="stable")
    quarter = max(limit // 4, 1)
    picks = [
        mapped["customer_id"].tail(quarter),
        mapped["customer_id"].head(quarter),
        findings.loc[
            findings["cause"].isin(["unexplained"]) | (findings["comparison"] == "A"), "customer_id"
        ].head(quarter),
        mapped["customer_id"].sort_values(kind="stable").head(quarter),
    ]
    return pd.Index(pd.concat(picks).dropna().unique()[:limit])


def _detail_lines(
    chosen: pd.Index,
    snapshot: Snapshot,
    legacy: PricedInvoices,
    new: PricedInvoices,
    window_start: pd.Timestamp | None,
) -> pd.DataFrame:
    parts = []
    for side, invoices, lines in (
        ("actual", snapshot["invoices"], snapshot["invoice_lines"]),
        ("legacy", legacy.invoices, legacy.lines),
        ("new", new.invoices, new.lines),
    ):
        inv = invoices[invoices["customer_id"].isin(chosen)]
        head = inv[
            ["invoice_id", "customer_id", "subscription_id", "currency", "period_start"]
        ].rename(columns={"period_start": "invoice_start"})
        cols = ["invoice_id", "kind", "price_id", "description", "quantity", "amount"]
        if "explain" in lines.columns:
            cols.append("explain")
        ln = lines[lines["invoice_id"].isin(head["invoice_id"])][cols].merge(head, on="invoice_id")
        ln["side"] = side
        ln["invoice_key"] = invoice_key(ln["subscription_id"], ln["invoice_start"])
        parts.append(ln.rename(columns={"invoice_start": "period_start"}))
    out = pd.concat(parts, ignore_index=True)
    out["currency"] = out["currency"].str.upper()
    return out.reindex(columns=list(LINE_COLUMNS)).astype(LINE_COLUMNS)


def _diffs(plan: Plan, snapshot: Snapshot, chosen: pd.Index) -> dict[str, object]:
    """Structured legacy-vs-new diffs for the customers the report can open (a bounded set)."""
    ids = plan.assignments.loc[plan.assignments["customer_id"].isin(chosen), "subscription_id"]
    small_plan = replace(
        plan,
        snapshot=_restrict(plan.snapshot, ids),
        assignments=plan.assignments[plan.assignments["subscription_id"].isin(ids)],
        lineage=plan.lineage[plan.lineage["subscription_id"].isin(ids)],
    )
    small_snapshot = _restrict(snapshot, ids)
    return {sid: plan_diff(small_plan, small_snapshot, sid) for sid in ids}


def reconcile_phase(
    snapshot: Snapshot,
    rollout: Rollout,
    phase: int,
    policy: Policy,
    *,
    fingerprints: dict[str, str] | None = None,
    options: Options = Options(),
) -> ReconciliationResult:
    """Reconcile one phase: comparisons A and B with causes, the customer view, the verdict."""
    plan = translate(snapshot, rollout, phase)
    cohort_ids = pd.concat([plan.assignments["subscription_id"], plan.unmapped["subscription_id"]])
    legacy_snap = _restrict(snapshot, plan.assignments["subscription_id"])
    start, end = _window(legacy_snap, plan, options.projection_months)
    legacy_proj = project_usage(legacy_snap, end)
    new_proj = project_usage(plan.snapshot, end)

    legacy_catalog = rollout.catalogs.legacy
    target = target_price_catalog(rollout)
    l0 = price(legacy_proj, legacy_catalog, start, end)
    l1 = price(legacy_proj, legacy_catalog.model_copy(update={"engine": target.engine}), start, end)
    # price protection: the protected subscriptions priced once without their coupon
    protected = plan.protections["subscription_id"]
    uncapped = (
        price(_restrict(new_proj, protected), target, start, end).invoices
        if len(protected)
        else l0.invoices
    )
    extra = protection_discounts(plan.protections, l0.invoices, uncapped)
    n = price(with_discounts(new_proj, extra), target, start, end)

    # A: the issued legacy invoices of the cohort against the legacy catalog.
    cohort_snap = _restrict(snapshot, cohort_ids)
    actual = cohort_snap["invoices"]
    if len(actual):
        lo, hi = actual["period_end"].min(), actual["period_end"].max()
        a_priced = price(cohort_snap, legacy_catalog, actual["period_start"].min(), hi)
        expected = a_priced.invoices[
            (a_priced.invoices["period_end"] >= lo) & (a_priced.invoices["period_end"] <= hi)
        ]
        findings_a = compare_legacy_drift(
            actual, cohort_snap["invoice_lines"], expected, a_priced.lines
        )
    else:
        findings_a = finish_findings(pd.DataFrame())

    attributed = attribute_invoices(
        Sides((l0.invoices, l0.lines), (l1.invoices, l1.lines), (n.invoices, n.lines)), plan.lineage
    )
    drift = findings_a[findings_a["level"] == "invoice"] if len(findings_a) else findings_a
    customers = _customers(snapshot, plan, attributed, drift)
    waterfall = _waterfall(attributed)
    findings = pd.concat(
        [
            findings_a.drop(columns=["actual_invoice_id"], errors="ignore"),
            _b_findings(attributed, plan, policy),
            _customer_findings(waterfall, customers, policy),
        ],
        ignore_index=True,
    )
    verdict = evaluate_gate(policy, phase, findings, customers, plan.unmapped)
    chosen = _detail_customers(customers, findings, options.detail_customers)
    diffs = _diffs(plan, snapshot, chosen[: options.diff_customers])
    unexplained = findings[findings["cause"] == "unexplained"]
    history_end = actual["period_end"].max() if len(actual) else None
    return ReconciliationResult(
        phase=phase,
        phase_name=plan.phase_name,
        generated_at=pd.Timestamp(plan.as_of),
        findings=findings,
        customers=customers,
        waterfall=waterfall,
        monthly=_monthly(legacy_snap["invoices"], l0.invoices, n.invoices),
        plan_moves=_plan_moves(customers),
        lines=_detail_lines(chosen, snapshot, l0, n, start),
        exceptions={
            "unmapped": plan.unmapped,
            "quarantined": snapshot.quarantine,
            "unexplained": unexplained,
            "drift": drift,
            "pricing_errors": pd.concat([l0.errors, n.errors], ignore_index=True),
        },
        diffs=diffs,
        verdict=verdict,
        fingerprints=dict(fingerprints or {}),
        counts={
            "cohort_subscriptions": int(plan.cohort_size),
            "mapped_subscriptions": len(plan.assignments),
            "unmapped_subscriptions": len(plan.unmapped),
            "protected_subscriptions": len(plan.protections),
            "customers": int(customers["customer_id"].nunique()),
            "invoices_compared": len(attributed),
            "legacy_invoices_checked": len(actual),
            "projected_until": int(end.value // 10**9),
            "history_until": int(history_end.value // 10**9) if history_end is not None else 0,
            "quarantined_rows": len(snapshot.quarantine),
        },
    )


def reconcile_files(
    snapshot_dir: Path,
    rollout_path: Path,
    phase: int,
    policy_path: Path | None,
    *,
    options: Options = Options(),
) -> ReconciliationResult:
    """Read the inputs from disk, fingerprint them, and reconcile the phase."""
    snapshot = read_snapshot(snapshot_dir)
    rollout = load_rollout(rollout_path)
    policy = load_policy(policy_path)
    fingerprints = {
        "snapshot": snapshot_fingerprint(snapshot_dir, verify=False),
        "legacy_catalog": file_sha256(rollout.legacy_catalog_path),
        "new_catalog": file_sha256(rollout.new_catalog_path),
        "rollout": file_sha256(rollout.path),
    }
    if policy_path is not None:
        fingerprints["policy"] = file_sha256(Path(policy_path))
    return reconcile_phase(
        snapshot, rollout, phase, policy, fingerprints=fingerprints, options=options
    )
