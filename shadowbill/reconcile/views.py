"""The frames a reconciliation shows, built from the priced and attributed invoices.

Findings of comparison B, the customer view, the waterfall per customer, monthly totals,
plan moves, and the bounded detail (side-by-side lines, structured diffs) the report can
open. Each works on one partition's frames or on all of them alike.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa

from shadowbill.pricing.engine import PricedInvoices
from shadowbill.reconcile.compare_a import finish_findings
from shadowbill.reconcile.compare_b import positions
from shadowbill.reconcile.findings import WATERFALL_CAUSES
from shadowbill.reconcile.line_match import invoice_key, iso_seconds
from shadowbill.reconcile.policy import Policy
from shadowbill.reconcile.result import (
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    MONTHLY_COLUMNS,
    PLAN_MOVE_COLUMNS,
    WATERFALL_COLUMNS,
)
from shadowbill.snapshot.buckets import subscriptions_only
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.plan import Plan
from shadowbill.translate.plan_diff import plan_diff

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
    "tax_external": "tax from an outside tax engine (tax_mode external), reported apart",
    "unexplained": "no cause explains this part of the difference",
}


# A customer's waterfall step sums several subscriptions and invoices, so its text is a
# whole sentence without the per-invoice detail (the plans are in the customer's row).
STEP_TEXT = {
    **_CAUSE_TEXT,
    "price_change": "the new catalog's prices for the same items",
    "quantity_transform": "quantities transformed as the rollout says",
    "removed_item": "legacy items removed or replaced by usage",
    "new_usage_charge": "new usage charges",
    "discount_lost": "legacy discounts dropped at the cut-over",
    "legacy_total": "legacy model, recomputed",
    "new_total": "new model",
}


def restrict(snapshot: Snapshot, subscription_ids: pd.Series) -> Snapshot:
    """The snapshot's rows of these subscriptions only (customers and tax rates kept whole)."""
    return subscriptions_only(snapshot, subscription_ids)


def severity(cause: pd.Series, delta: pd.Series, policy: Policy) -> np.ndarray:
    """Unexplained is an error; a difference above the policy's materiality a warning."""
    material = (delta.abs() > policy.materiality.absolute).to_numpy(dtype=bool)
    return np.where(cause == "unexplained", "error", np.where(material, "warning", "info"))


def customer_findings(
    waterfall: pd.DataFrame, customers: pd.DataFrame, policy: Policy
) -> pd.DataFrame:
    """Comparison B per customer and cause: the waterfall's steps as findings."""
    steps = waterfall[waterfall["cause"].isin(WATERFALL_CAUSES)]
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
    frame["severity"] = severity(frame["cause"], frame["delta"], policy)
    frame["subscription_id"] = frame["customer_id"]  # keeps finding ids distinct per customer
    return finish_findings(frame)


_DETAIL = {  # the assignment column that completes each cause's sentence
    "price_change": ("legacy_plan", "new_plan"),
    "quantity_transform": ("rule_id",),
    "removed_item": ("dropped_items",),
    "new_usage_charge": ("new_items",),
    "discount_lost": ("rule_id",),
}


def b_findings(attributed: pd.DataFrame, plan: Plan, policy: Policy) -> pd.DataFrame:
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
    for cause in WATERFALL_CAUSES:
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
    frame["severity"] = severity(frame["cause"], frame["delta"], policy)
    return finish_findings(frame)


def customer_view(
    snapshot: Snapshot, plan: Plan, attributed: pd.DataFrame, drift: pd.DataFrame
) -> pd.DataFrame:
    """One row per mapped customer and currency (totals, delta, drift), then the unmapped."""
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
    # per customer AND currency: pence and cents are never added together
    keys = pd.MultiIndex.from_frame(per[["customer_id", "currency"]].astype(str))
    if len(drift):
        drift_sum = (
            drift.assign(
                customer_id=drift["customer_id"].astype(str),
                currency=drift["currency"].astype(str).str.lower(),
            )
            .groupby(["customer_id", "currency"])["delta"]
            .sum()
        )
        keys = pd.MultiIndex.from_arrays(
            [keys.get_level_values(0), keys.get_level_values(1).str.lower()]
        )
        per["drift"] = drift_sum.reindex(keys).fillna(0).astype("int64").to_numpy()
    else:
        per["drift"] = 0
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


def waterfall_view(attributed: pd.DataFrame) -> pd.DataFrame:
    """Per customer and currency: legacy total, each non-zero cause, new total."""
    per = attributed.groupby(["customer_id", "currency"])[
        ["legacy_total", *WATERFALL_CAUSES, "new_total"]
    ].sum()
    long = per.reset_index().melt(
        id_vars=["customer_id", "currency"], var_name="cause", value_name="amount"
    )
    order = {c: i for i, c in enumerate(["legacy_total", *WATERFALL_CAUSES, "new_total"])}
    long["step"] = long["cause"].map(order)
    keep = long["cause"].isin(["legacy_total", "new_total"]) | (long["amount"] != 0)
    long = long[keep].sort_values(["customer_id", "currency", "step"], kind="stable")
    long["explanation"] = long["cause"].map(STEP_TEXT)
    return (
        long.reindex(columns=list(WATERFALL_COLUMNS))
        .astype(WATERFALL_COLUMNS)
        .reset_index(drop=True)
    )


def monthly_view(actual: pd.DataFrame, legacy: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Totals per month and currency: issued legacy, recomputed legacy, new model."""

    def by_month(frame: pd.DataFrame, name: str) -> pd.Series:
        month = iso_seconds(frame["period_start"]).str.slice(0, 7)
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


def plan_moves_view(customers: pd.DataFrame) -> pd.DataFrame:
    """Customers and totals per move from a legacy plan to a new plan."""
    mapped = customers[customers["status"] == "mapped"]
    out = mapped.groupby(["legacy_plan", "new_plan", "currency"], dropna=False).agg(
        customers=("customer_id", "nunique"),
        legacy_total=("legacy_total", "sum"),
        new_total=("new_total", "sum"),
    )
    out = out.reset_index()
    out["delta"] = out["new_total"] - out["legacy_total"]
    return out.reindex(columns=list(PLAN_MOVE_COLUMNS)).astype(PLAN_MOVE_COLUMNS)


def detail_customers(customers: pd.DataFrame, findings: pd.DataFrame, limit: int) -> pd.Index:
    """The bounded set of customers whose invoices the report can open."""
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


def detail_lines(
    chosen: pd.Index,
    snapshot: Snapshot,
    legacy: PricedInvoices,
    new: PricedInvoices,
    window_start: pd.Timestamp | None,
) -> pd.DataFrame:
    """Side-by-side lines (issued, legacy recomputed, new) of the chosen customers."""
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
    return sort_detail_lines(out.reindex(columns=list(LINE_COLUMNS)).astype(LINE_COLUMNS))


def sort_detail_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """Side, then customer and invoice; lines keep their order within an invoice."""
    side = lines["side"].map({"actual": 0, "legacy": 1, "new": 2}).rename("_side")
    out = lines.assign(_side=side).sort_values(
        ["_side", "customer_id", "subscription_id", "period_start"], kind="stable"
    )
    return out.drop(columns="_side").reset_index(drop=True)


def plan_diffs(plan: Plan, snapshot: Snapshot, chosen: pd.Index) -> dict[str, object]:
    """Structured legacy-vs-new diffs for the customers the report can open (a bounded set)."""
    ids = plan.assignments.loc[plan.assignments["customer_id"].isin(chosen), "subscription_id"]
    small_plan = replace(
        plan,
        snapshot=restrict(plan.snapshot, ids),
        assignments=plan.assignments[plan.assignments["subscription_id"].isin(ids)],
        lineage=plan.lineage[plan.lineage["subscription_id"].isin(ids)],
    )
    small_snapshot = restrict(snapshot, ids)
    return {sid: plan_diff(small_plan, small_snapshot, sid) for sid in ids}
