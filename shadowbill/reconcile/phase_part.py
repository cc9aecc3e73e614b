"""One partition's share of a phase reconciliation, and the combination of all shares.

A partition holds whole customers (``shadowbill.snapshot.partitions``), so translation, pricing
and comparisons A and B run on it alone. What every partition must share is fixed
first, for the whole estate: the instant cohorts are judged at (``as_of``) and the
pricing window. The shares come back as findings and per-customer frames and are
combined in an order that does not depend on how the estate was cut, so one partition or
sixty-four give byte-identical results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shadowbill.pricing.catalog import TaxMode
from shadowbill.pricing.engine import PricedInvoices, price
from shadowbill.pricing.periods import add_months
from shadowbill.pricing.projection import project_usage
from shadowbill.pricing.protection import protection_discounts, with_discounts
from shadowbill.reconcile.compare_a import compare_legacy_drift, finish_findings
from shadowbill.reconcile.compare_b import Sides, attribute_invoices
from shadowbill.reconcile.findings import with_customer_names
from shadowbill.reconcile.findings_spill import FindingStats, Spill, ordered, spill
from shadowbill.reconcile.gate import gate_relevant
from shadowbill.reconcile.policy import Policy
from shadowbill.reconcile.result import MONTHLY_COLUMNS
from shadowbill.reconcile.revenue import (
    BRIDGE_COLUMNS,
    REVENUE_COLUMNS,
    RUN_RATE_COLUMNS,
    net_attribution,
    revenue_view,
    run_rate_view,
)
from shadowbill.reconcile.views import (
    b_findings,
    customer_findings,
    customer_view,
    monthly_view,
    restrict,
    waterfall_view,
)
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.cohort import resolve_as_of
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Rollout, target_price_catalog
from shadowbill.translate.run import translate

FINDING_SORT = ["comparison", "subscription_id", "period_start", "level", "line_key"]
ADDITIVE_COUNTS = (
    "cohort_subscriptions",
    "mapped_subscriptions",
    "unmapped_subscriptions",
    "protected_subscriptions",
    "invoices_compared",
    "legacy_invoices_checked",
)


@dataclass(frozen=True)
class Window:
    """What every partition of one phase shares: the cohort instant and the pricing window."""

    as_of: pd.Timestamp
    start: pd.Timestamp | None  # the first legacy period of the mapped subscriptions
    end: pd.Timestamp  # the last cut-over (or as_of) plus the projection months


@dataclass(frozen=True)
class Bounds:
    """A partition's contribution to the window: its earliest period and latest cut-over."""

    start: pd.Timestamp | None = None
    last_cutover: pd.Timestamp | None = None
    phase_name: str = ""


@dataclass
class PhasePart:
    """One partition's findings and per-customer frames, ready to be combined."""

    phase_name: str
    spill: Spill  # every finding, on disk in output order
    notable: pd.DataFrame  # the findings the gate reads (gate_relevant), output order, + _bucket
    stats: FindingStats
    customers: pd.DataFrame
    waterfall: pd.DataFrame
    monthly: pd.DataFrame
    unmapped: pd.DataFrame
    pricing_errors: pd.DataFrame
    drift: pd.DataFrame  # comparison A per invoice, with the issued invoice's id
    revenue: pd.DataFrame  # net of tax, per month, segment and basis (revenue.py)
    run_rate: pd.DataFrame  # per customer
    bridge: pd.DataFrame  # per currency and step
    cutover: tuple[pd.Timestamp, pd.Timestamp] | None = None
    counts: dict[str, int] = field(default_factory=dict)


def plan_bounds(plan: Plan, snapshot: Snapshot) -> Bounds:
    """The earliest legacy period of the plan's mapped subscriptions and its last cut-over."""
    invoices = snapshot["invoices"]
    mapped = invoices[invoices["subscription_id"].isin(plan.assignments["subscription_id"])]
    start = mapped["period_start"].min() if len(mapped) else None
    last = plan.assignments["cutover_at"].max()
    return Bounds(
        None if start is None or pd.isna(start) else pd.Timestamp(start),
        None if pd.isna(last) else pd.Timestamp(last),
        plan.phase_name,
    )


def window_of(as_of: pd.Timestamp, bounds: list[Bounds], months: int) -> Window:
    """The shared pricing window from every partition's bounds."""
    starts = [b.start for b in bounds if b.start is not None]
    cutovers = [b.last_cutover for b in bounds if b.last_cutover is not None]
    base = max([*cutovers, as_of]) if cutovers else as_of
    base_us = np.array([pd.Timestamp(base).value // 1000], dtype=np.int64)
    end = pd.Timestamp(int(add_months(base_us, np.array([months]))[0]) * 1000, tz="UTC")
    return Window(as_of, min(starts) if starts else None, end)


@dataclass(frozen=True)
class PricedSides:
    """The three pricings comparison B attributes, plus the legacy history they cover."""

    legacy_history: Snapshot
    l0: PricedInvoices  # legacy model, legacy engine rules
    l1: PricedInvoices  # legacy model, new engine rules
    new: PricedInvoices  # new model with price protection


def price_sides(
    snapshot: Snapshot, plan: Plan, rollout: Rollout, window: Window, *, text: bool = False
) -> PricedSides:
    """Price the plan's subscriptions under both models over the shared window.

    ``text`` adds the lines' descriptions and explanations to the legacy and new sides,
    for the report's detail.
    """
    legacy_snap = restrict(snapshot, plan.assignments["subscription_id"])
    start, end = window.start, window.end
    legacy_proj = project_usage(legacy_snap, end)
    new_proj = project_usage(plan.snapshot, end)
    legacy_catalog = rollout.catalogs.legacy
    target = target_price_catalog(rollout)
    l0 = price(legacy_proj, legacy_catalog, start, end, text=text)
    l1_catalog = legacy_catalog.model_copy(update={"engine": target.engine})
    l1 = price(legacy_proj, l1_catalog, start, end, text=False)
    # price protection: the protected subscriptions priced once without their coupon
    protected = plan.protections["subscription_id"]
    uncapped = (
        price(restrict(new_proj, protected), target, start, end, text=False).invoices
        if len(protected)
        else l0.invoices
    )
    extra = protection_discounts(plan.protections, l0.invoices, uncapped)
    n = price(with_discounts(new_proj, extra), target, start, end, text=text)
    return PricedSides(legacy_snap, l0, l1, n)


def _drift(snapshot: Snapshot, plan: Plan, rollout: Rollout) -> tuple[pd.DataFrame, int]:
    """Comparison A: the cohort's issued legacy invoices against the legacy catalog."""
    cohort_ids = pd.concat([plan.assignments["subscription_id"], plan.unmapped["subscription_id"]])
    cohort_snap = restrict(snapshot, cohort_ids)
    actual = cohort_snap["invoices"]
    if not len(actual):
        return finish_findings(pd.DataFrame()), 0
    lo, hi = actual["period_end"].min(), actual["period_end"].max()
    a_priced = price(
        cohort_snap, rollout.catalogs.legacy, actual["period_start"].min(), hi, text=False
    )
    expected = a_priced.invoices[
        (a_priced.invoices["period_end"] >= lo) & (a_priced.invoices["period_end"] <= hi)
    ]
    findings = compare_legacy_drift(
        actual,
        cohort_snap["invoice_lines"],
        expected,
        a_priced.lines,
        tax_external=rollout.catalogs.legacy.tax_mode is TaxMode.EXTERNAL,
    )
    return findings, len(actual)


def reconcile_part(
    snapshot: Snapshot,
    rollout: Rollout,
    phase: int,
    policy: Policy,
    window: Window | None,
    spill_path: Path,
    *,
    projection_months: int = 12,
    plan: Plan | None = None,
    as_of: pd.Timestamp | None = None,
) -> tuple[PhasePart, Window]:
    """Reconcile the customers of one partition over the shared window.

    ``window`` None takes it from this snapshot alone: right only for the whole estate.
    The partition's findings go to ``spill_path``; the share keeps their counts and the
    findings the gate and the report read (comparison A, unexplained). ``plan`` is this
    snapshot's translation when an earlier pass already made it.
    """
    if window is not None:
        as_of = window.as_of
    elif as_of is None:
        as_of = resolve_as_of(snapshot, rollout)
    if plan is None:
        plan = translate(snapshot, rollout, phase, as_of=as_of)
    if window is None:
        window = window_of(as_of, [plan_bounds(plan, snapshot)], projection_months)
    sides = price_sides(snapshot, plan, rollout, window)
    findings_a, checked = _drift(snapshot, plan, rollout)
    attributed = attribute_invoices(
        Sides(
            (sides.l0.invoices, sides.l0.lines),
            (sides.l1.invoices, sides.l1.lines),
            (sides.new.invoices, sides.new.lines),
        ),
        plan.lineage,
    )
    drift = findings_a[findings_a["level"] == "invoice"] if len(findings_a) else findings_a
    customers = customer_view(snapshot, plan, attributed, drift)
    waterfall = waterfall_view(attributed)
    actual = snapshot["invoices"]
    cohort_invoices = actual[
        actual["subscription_id"].isin(plan.assignments["subscription_id"])
        | actual["subscription_id"].isin(plan.unmapped["subscription_id"])
    ]
    history_end = cohort_invoices["period_end"].max() if len(cohort_invoices) else None
    groups = (
        findings_a.drop(columns=["actual_invoice_id"], errors="ignore"),
        b_findings(attributed, plan, policy),
        customer_findings(waterfall, customers, policy),
    )
    named = tuple(with_customer_names(g, snapshot["customers"]) for g in groups)
    findings, buckets = ordered(named)
    keep = gate_relevant(findings, policy, phase)
    net = net_attribution(attributed, sides.l0.invoices, sides.l1.invoices, sides.new.invoices)
    segments = snapshot["customers"].drop_duplicates("customer_id").set_index("customer_id")
    run_rate, bridge = run_rate_view(net, plan.assignments)
    cut = plan.assignments["cutover_at"].dropna()
    part = PhasePart(
        phase_name=plan.phase_name,
        spill=spill(findings, buckets, spill_path),
        notable=findings[keep].assign(_bucket=buckets[keep]),
        stats=FindingStats.of(findings),
        customers=customers,
        waterfall=waterfall,
        monthly=monthly_view(
            sides.legacy_history["invoices"], sides.l0.invoices, sides.new.invoices
        ),
        unmapped=plan.unmapped,
        pricing_errors=pd.concat([sides.l0.errors, sides.new.errors], ignore_index=True),
        drift=drift,
        revenue=revenue_view(
            sides.legacy_history["invoices"],
            net,
            plan.assignments,
            segments["segment"].astype("string"),
        ),
        run_rate=run_rate,
        bridge=bridge,
        cutover=(pd.Timestamp(cut.min()), pd.Timestamp(cut.max())) if len(cut) else None,
        counts={
            "cohort_subscriptions": int(plan.cohort_size),
            "mapped_subscriptions": len(plan.assignments),
            "unmapped_subscriptions": len(plan.unmapped),
            "protected_subscriptions": len(plan.protections),
            "invoices_compared": len(attributed),
            "legacy_invoices_checked": checked,
            "history_until": (
                int(pd.Timestamp(history_end).value // 10**9)
                if history_end is not None and pd.notna(history_end)
                else 0
            ),
        },
    )
    return part, window


def _sorted(frames: list[pd.DataFrame], by: list[str]) -> pd.DataFrame:
    """Concatenated and put in a total order (ties only ever within one partition)."""
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return out.sort_values(by, kind="stable", na_position="last").reset_index(drop=True)


def combine_notable(parts: list[PhasePart]) -> pd.DataFrame:
    """The partitions' comparison A and unexplained findings, in output (bucket) order."""
    whole = pd.concat([p.notable for p in parts], ignore_index=True)
    # rows of one bucket all come from one partition, already in order
    whole = whole.sort_values("_bucket", kind="stable").drop(columns="_bucket")
    return whole.reset_index(drop=True)


def combine_stats(parts: list[PhasePart]) -> FindingStats:
    """The counts of every partition's findings."""
    total = FindingStats()
    for p in parts:
        total = total.add(p.stats)
    return total


def combine_customers(parts: list[PhasePart]) -> pd.DataFrame:
    """The customer view of every partition: mapped by customer and currency, then unmapped."""
    whole = pd.concat([p.customers for p in parts], ignore_index=True)
    mapped = whole[whole["status"] == "mapped"].sort_values(
        ["customer_id", "currency"], kind="stable"
    )
    unmapped = whole[whole["status"] != "mapped"].sort_values(["customer_id"], kind="stable")
    return pd.concat([mapped, unmapped], ignore_index=True)


def combine_monthly(parts: list[PhasePart]) -> pd.DataFrame:
    """Monthly totals summed over partitions (integer sums are exact)."""
    whole = pd.concat([p.monthly for p in parts], ignore_index=True)
    sums = whole.groupby(["month", "currency"], sort=True, as_index=False)[
        ["actual_legacy", "legacy_total", "new_total"]
    ].sum()
    return sums.reindex(columns=list(MONTHLY_COLUMNS)).astype(MONTHLY_COLUMNS)


def combine_counts(parts: list[PhasePart]) -> dict[str, int]:
    """Counts added over partitions; the history's end is the latest of them."""
    out = {k: sum(int(p.counts.get(k, 0)) for p in parts) for k in ADDITIVE_COUNTS}
    out["history_until"] = max((int(p.counts.get("history_until", 0)) for p in parts), default=0)
    return out


def combine_waterfall(parts: list[PhasePart]) -> pd.DataFrame:
    """Every partition's waterfall steps, by customer, currency and step."""
    return _sorted([p.waterfall for p in parts], ["customer_id", "currency", "step"])


def combine_drift(parts: list[PhasePart]) -> pd.DataFrame:
    """Every partition's invoice-level drift findings, in findings order."""
    return _sorted([p.drift for p in parts], FINDING_SORT)


def combine_unmapped(parts: list[PhasePart]) -> pd.DataFrame:
    """Every partition's unmapped subscriptions, by subscription."""
    return _sorted([p.unmapped for p in parts], ["subscription_id"])


def combine_pricing_errors(parts: list[PhasePart]) -> pd.DataFrame:
    """Every partition's pricing errors, in a stable order."""
    whole = pd.concat([p.pricing_errors for p in parts], ignore_index=True)
    if whole.empty:
        return whole
    keys = [c for c in ("subscription_id", "period_start", "price_id", "reason") if c in whole]
    return whole.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def combine_revenue(parts: list[PhasePart]) -> pd.DataFrame:
    """Revenue per month, currency, segment and basis summed over partitions."""
    whole = pd.concat([p.revenue for p in parts], ignore_index=True)
    keys = list(REVENUE_COLUMNS)[:4]
    sums = whole.groupby(keys, sort=True, as_index=False)[list(REVENUE_COLUMNS)[4:]].sum()
    return sums.reindex(columns=list(REVENUE_COLUMNS)).astype(REVENUE_COLUMNS)


def combine_run_rate(parts: list[PhasePart]) -> pd.DataFrame:
    """Every partition's run-rate per customer, by customer and currency."""
    out = _sorted([p.run_rate for p in parts], ["customer_id", "currency"])
    return out.astype(RUN_RATE_COLUMNS)


def combine_bridge(parts: list[PhasePart]) -> pd.DataFrame:
    """The run-rate bridge summed over partitions, steps in their order."""
    whole = pd.concat([p.bridge for p in parts], ignore_index=True)
    order = {s: i for i, s in enumerate(pd.unique(whole["step"]))}
    sums = whole.groupby(["currency", "step"], as_index=False)["amount"].sum()
    sums = sums.assign(_o=sums["step"].map(order)).sort_values(["currency", "_o"], kind="stable")
    return sums.drop(columns="_o").reset_index(drop=True).astype(BRIDGE_COLUMNS)


def combine_cutover(parts: list[PhasePart]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The earliest and latest cut-over over partitions."""
    known = [p.cutover for p in parts if p.cutover is not None]
    if not known:
        return None
    return min(k[0] for k in known), max(k[1] for k in known)
