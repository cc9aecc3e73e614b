"""A check scoped to a configuration change: re-reconcile only the customers it can affect.

The base and head configurations are mapped over the estate's item history (no pricing):
a subscription can be affected when a segment of its history matches another rule or
gets other new items under the head, matches a rule the change added, removed or edited,
holds or gets a changed price, or carries a changed coupon. Its customer's every
subscription is reconciled again, in the baseline's pricing window; every other
customer's findings and rows come from the baseline, so the result is the one a full run
gives. When the change cannot be bounded that way (``ConfigChange.unbounded``, another
snapshot, a baseline not run on the base configuration, a change that moves the pricing
window or maps or unmaps subscriptions) the caller is told why and runs the whole phase.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shadowbill.reconcile.baseline import (
    DIFF_COLUMNS,
    Baseline,
    FindingsDiff,
    RunWindow,
    compare_tables,
    net_of_tax,
)
from shadowbill.reconcile.config_diff import ConfigChange
from shadowbill.reconcile.findings import FINDING_COLUMNS
from shadowbill.reconcile.findings_spill import (
    DICTIONARY_COLUMNS,
    STAT_KEYS,
    FindingStats,
    findings_schema,
)
from shadowbill.reconcile.gate import evaluate_gate, gate_relevant
from shadowbill.reconcile.phase_part import PhasePart, Window, plan_bounds, reconcile_part
from shadowbill.reconcile.policy import Policy
from shadowbill.reconcile.result import MONTHLY_COLUMNS, ReconciliationResult
from shadowbill.snapshot.io import read_customers, read_quarantine, read_snapshot
from shadowbill.snapshot.partitions import BUCKETS, bucket_of
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.cohort import product_of, select_cohort
from shadowbill.translate.phase_mapping import PhaseMapping, map_phase
from shadowbill.translate.rollout import Rollout
from shadowbill.translate.run import translate

# Rows of a bucket are in this order in findings.parquet: comparison A, comparison B per
# invoice, comparison B per customer, each in findings order (findings_spill.ordered).
_ORDER = ["_group", "subscription_id", "period_start", "level", "line_key", "customer_id"]


@dataclass(frozen=True)
class Scope:
    """The customers a change can affect (whole customers) and how many subscriptions they hold."""

    customers: tuple[str, ...] = ()
    subscriptions: int = 0


def check_baseline(
    baseline: Baseline,
    change: ConfigChange,
    phase: int,
    projection_months: int,
    head_snapshot: str,
    base_fingerprints: dict[str, str],
) -> str:
    """Why the baseline cannot stand for the unaffected customers ('' when it can)."""
    if change.unbounded:
        return "; ".join(change.unbounded)
    scope = baseline.scope or {}
    if baseline.window() is None or baseline.customers is None or baseline.unmapped is None:
        return f"the baseline {baseline.path} was not written by `shadowbill check --out`"
    if not baseline.current:
        return "the baseline's findings have another version's columns"
    if int(scope.get("phase", -1)) != phase or int(baseline.summary.get("phase", -1)) != phase:
        return f"the baseline reconciled phase {baseline.summary.get('phase')}, not {phase}"
    if int(scope.get("projection_months", -1)) != projection_months:
        return f"the baseline projected {scope.get('projection_months')} months, not {projection_months}"
    recorded = baseline.fingerprints
    if recorded.get("snapshot") != head_snapshot:
        return "the snapshot differs from the baseline's (manifest fingerprints differ)"
    for name, sha in sorted(base_fingerprints.items()):
        if recorded.get(name) != sha:
            return f"the baseline was not run on the base configuration (its {name} differs)"
    extra = sorted(set(recorded) - set(base_fingerprints) - {"snapshot"})
    if extra:
        return f"the baseline was not run on the base configuration (it had a {extra[0]})"
    return ""


def _estate(snapshot_dir: Path) -> Snapshot:
    """The tables rule matching reads: customers, subscriptions, items, discounts."""
    return read_snapshot(snapshot_dir, skip=("invoices", "invoice_lines", "usage"))


def _mapping(estate: Snapshot, rollout: Rollout, phase: int, as_of: pd.Timestamp) -> PhaseMapping:
    cohort = select_cohort(estate, rollout, phase, as_of=as_of)
    return map_phase(
        estate["subscription_items"],
        cohort,
        rollout.phase(phase),
        as_of,
        product_of(rollout.catalogs),
        list(rollout.spec.seat_prices),
    )


def _segment_rows(pm: PhaseMapping) -> pd.DataFrame:
    """Per segment: subscription, start, the matched rule's id and the new items, as text."""
    frame = pm.segments.frame
    ids = np.array([r.id for r in pm.phase.rules] + [""], dtype=object)
    rule = ids[np.where(pm.seg_rule >= 0, pm.seg_rule, len(ids) - 1)]
    # the new items of each segment as one number: xor of each (price, quantity)'s hash
    # (one row per new price and segment, so no pair cancels out)
    new = pm.applied.new_items.sort_values("seg", kind="stable")
    hashed = pd.util.hash_pandas_object(
        new[["price_id", "quantity"]].astype("string").fillna("?"), index=False
    ).to_numpy(np.uint64)
    segs = new["seg"].to_numpy(dtype=np.int64)
    new_hash = np.zeros(len(frame), dtype=np.uint64)
    if len(segs):
        starts = np.flatnonzero(np.r_[True, segs[1:] != segs[:-1]])
        new_hash[segs[starts]] = np.bitwise_xor.reduceat(hashed, starts)
    return pd.DataFrame(
        {
            "subscription_id": frame["subscription_id"].astype("string").to_numpy(),
            "start": frame["start"].astype("string").fillna("").to_numpy(),
            "rule": rule,
            "new": new_hash,
        }
    )


def _new_prices(pm: PhaseMapping, prices: set[str]) -> set[str]:
    new = pm.applied.new_items
    segs = new.loc[new["price_id"].isin(list(prices)), "seg"].to_numpy()
    subs = pm.segments.frame["subscription_id"].to_numpy()[segs]
    return {str(s) for s in subs}


def affected_subscriptions(
    estate: Snapshot,
    base: Rollout,
    head: Rollout,
    change: ConfigChange,
    phase: int,
    as_of: pd.Timestamp,
) -> set[str]:
    """The subscriptions whose findings the change can alter (see the module's docstring)."""
    affected: set[str] = set()
    prices = change.price_ids()
    if change.rules or change.item_maps or prices:
        before = _segment_rows(_mapping(estate, base, phase, as_of))
        after = _segment_rows(_mapping(estate, head, phase, as_of))
        both = before.merge(after, how="outer", indicator=True)
        affected |= set(both.loc[both["_merge"] != "both", "subscription_id"].astype(str))
        rules = change.rules_of(phase)
        for rows in (before, after):
            affected |= set(rows.loc[rows["rule"].isin(list(rules)), "subscription_id"].astype(str))
        if prices:
            items = estate["subscription_items"]
            affected |= set(
                items.loc[items["price_id"].isin(list(prices)), "subscription_id"].astype(str)
            )
            for rollout in (base, head):
                affected |= _new_prices(_mapping(estate, rollout, phase, as_of), prices)
    coupons = change.coupon_ids()
    if coupons:
        discounts = estate["discounts"]
        affected |= set(
            discounts.loc[discounts["coupon_id"].isin(list(coupons)), "subscription_id"].astype(str)
        )
    return affected


def find_scope(
    snapshot_dir: Path,
    base: Rollout,
    head: Rollout,
    change: ConfigChange,
    phase: int,
    window: RunWindow,
) -> tuple[Scope, Snapshot]:
    """The customers a change can affect (whole customers: every subscription of theirs)."""
    estate = _estate(snapshot_dir)
    subs = affected_subscriptions(estate, base, head, change, phase, window.as_of)
    table = estate["subscriptions"]
    customers = sorted(
        set(table.loc[table["subscription_id"].isin(list(subs)), "customer_id"].astype(str))
    )
    n = int(table["customer_id"].isin(customers).sum())
    return Scope(tuple(customers), n), estate


def _group(table: pa.Table) -> pa.Array:
    a = pc.equal(table["comparison"], "A")
    per_customer = pc.equal(table["level"], "customer")
    return pc.if_else(a, 0, pc.if_else(per_customer, 2, 1))


@dataclass(frozen=True)
class Merged:
    """The whole phase's findings and what the re-reconciled customers replaced."""

    findings: pa.Table  # every finding, in output order
    fresh: pa.Table  # the re-reconciled customers' findings
    replaced: pa.Table  # the baseline's findings of those customers
    baseline_net: dict[str, int]  # the baseline's comparison B per invoice net of tax


def _merge_findings(
    baseline_file: Path, spill_file: Path | None, customers: pd.Index, out_path: Path
) -> Merged:
    """Baseline rows of unaffected customers + the re-reconciled rows, in full-run order.

    One row group per bucket, as ``findings_spill.merge_spills`` writes them.
    """
    fresh = findings_schema().empty_table()
    if spill_file is not None:
        with pa.OSFile(str(spill_file), "rb") as source:
            fresh = pa.ipc.open_file(source).read_all()
    fresh_buckets = bucket_of(fresh["customer_id"].to_pandas().astype("string"))
    by_fresh = np.argsort(fresh_buckets, kind="stable")
    fresh, fresh_buckets = fresh.take(pa.array(by_fresh)), fresh_buckets[by_fresh]
    bounds = np.searchsorted(fresh_buckets, np.arange(BUCKETS + 1), side="left")
    touched = set(int(b) for b in bucket_of(pd.Series(customers, dtype="string")))
    ids = pa.array(list(customers), type=pa.string())
    baseline = pq.ParquetFile(str(baseline_file))
    by_bucket: dict[int, pa.Table] = {}
    replaced: list[pa.Table] = []
    net: Counter[str] = Counter()
    for i in range(baseline.num_row_groups):
        group = baseline.read_row_group(i).cast(findings_schema())
        if group.num_rows == 0:
            continue
        net.update(net_of_tax(group))
        b = int(bucket_of(pd.Series([group["customer_id"][0].as_py()], dtype="string"))[0])
        if b in touched:
            mine = pc.is_in(group["customer_id"], value_set=ids)
            replaced.append(group.filter(mine))
            group = group.filter(pc.invert(mine))
        by_bucket[b] = group
    for b in sorted(touched):
        rows = fresh.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b]))
        whole = pa.concat_tables([by_bucket[b], rows]) if b in by_bucket else rows
        keyed = whole.append_column("_group", _group(whole))
        order = pc.sort_indices(keyed, sort_keys=[(k, "ascending", "at_end") for k in _ORDER])
        by_bucket[b] = whole.take(order)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tables = [by_bucket[b] for b in sorted(by_bucket) if by_bucket[b].num_rows]
    with pq.ParquetWriter(
        str(out_path), findings_schema(), use_dictionary=list(DICTIONARY_COLUMNS)
    ) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=table.num_rows)
    empty = findings_schema().empty_table()
    return Merged(
        pa.concat_tables(tables) if tables else empty,
        fresh,
        pa.concat_tables(replaced) if replaced else empty,
        dict(net),
    )


def _stats(table: pa.Table) -> FindingStats:
    stats = FindingStats(total=table.num_rows)
    for key in STAT_KEYS:
        counts = pc.value_counts(pc.fill_null(table[key], ""))
        stats.by[key] = Counter({str(v["values"]): int(v["counts"]) for v in counts.to_pylist()})
    pairs = table.group_by(["comparison", "cause"]).aggregate([([], "count_all")])
    for row in pairs.to_pylist():
        stats.pairs[(str(row["comparison"] or ""), str(row["cause"] or ""))] += int(
            row["count_all"]
        )
    return stats


def _replace_customers(old: pd.DataFrame, customers: pd.Index, new: pd.DataFrame) -> pd.DataFrame:
    """The customer view with these customers' rows replaced, in the combined order."""
    whole = pd.concat([old[~old["customer_id"].isin(customers)], new], ignore_index=True)
    whole = whole.astype({c: t for c, t in old.dtypes.items()})
    mapped = whole[whole["status"] == "mapped"].sort_values(
        ["customer_id", "currency"], kind="stable"
    )
    unmapped = whole[whole["status"] != "mapped"].sort_values(["customer_id"], kind="stable")
    return pd.concat([mapped, unmapped], ignore_index=True)


def _mapping_status(
    plan_assignments: pd.DataFrame, unmapped: pd.DataFrame
) -> tuple[set[str], set[str]]:
    return (
        set(plan_assignments["subscription_id"].astype(str)),
        set(unmapped["subscription_id"].astype(str)),
    )


@dataclass(frozen=True)
class ScopedResult:
    """A scoped check's result and what it re-reconciled."""

    result: ReconciliationResult
    diff: FindingsDiff  # the findings against the baseline's
    scope: Scope


def scoped_reconcile(
    snapshot_dir: Path,
    base: Rollout,
    head: Rollout,
    policy: Policy,
    phase: int,
    baseline: Baseline,
    scope: Scope,
    *,
    fingerprints: dict[str, str],
    projection_months: int,
    work_dir: Path,
) -> ScopedResult | str:
    """Reconcile the scope's customers under the head and take the rest from the baseline.

    Returns why a full run is needed instead when the change moves the pricing window or
    maps or unmaps subscriptions (the baseline's totals could then not be carried over).
    """
    stored = baseline.window()
    assert stored is not None and baseline.customers is not None and baseline.unmapped is not None
    window = Window(stored.as_of, stored.start, stored.end)
    customers = pd.Index(scope.customers, dtype="string")
    if not len(customers):
        return ScopedResult(
            *_combine(
                None,
                baseline,
                customers,
                policy,
                phase,
                window,
                snapshot_dir,
                fingerprints,
                work_dir,
            ),
            scope,
        )
    subset = read_customers(snapshot_dir, customers)
    head_plan = translate(subset, head, phase, as_of=window.as_of)
    base_plan = translate(subset, base, phase, as_of=window.as_of)
    head_bounds, base_bounds = plan_bounds(head_plan, subset), plan_bounds(base_plan, subset)
    if (head_bounds.start, head_bounds.last_cutover) != (
        base_bounds.start,
        base_bounds.last_cutover,
    ):
        return "the change moves the pricing window (a first period or a cut-over)"
    if _mapping_status(head_plan.assignments, head_plan.unmapped) != _mapping_status(
        base_plan.assignments, base_plan.unmapped
    ):
        return "the change maps or unmaps subscriptions"
    spill_path = work_dir / "scoped.arrow"
    part, _ = reconcile_part(
        subset,
        head,
        phase,
        policy,
        window,
        spill_path,
        projection_months=projection_months,
        plan=head_plan,
    )
    return ScopedResult(
        *_combine(
            part,
            baseline,
            customers,
            policy,
            phase,
            window,
            snapshot_dir,
            fingerprints,
            work_dir,
            protected_before=len(base_plan.protections),
        ),
        scope,
    )


def _combine(
    part: PhasePart | None,
    baseline: Baseline,
    customers: pd.Index,
    policy: Policy,
    phase: int,
    window: Window,
    snapshot_dir: Path,
    fingerprints: dict[str, str],
    work_dir: Path,
    *,
    protected_before: int = 0,
) -> tuple[ReconciliationResult, FindingsDiff]:
    """The whole phase's result from the baseline and the re-reconciled customers (if any)."""
    assert baseline.customers is not None and baseline.unmapped is not None
    merged_file = work_dir / "findings.parquet"
    spill_file = None if part is None else part.spill.path
    merged = _merge_findings(baseline.findings_file, spill_file, customers, merged_file)
    table = merged.findings
    frame = table.select(["comparison", "level", "cause"]).to_pandas()
    keep = gate_relevant(frame, policy, phase)
    notable = table.filter(pa.array(keep)).to_pandas()
    notable = notable.astype(FINDING_COLUMNS)
    before = baseline.customers
    customer_rows = (
        before if part is None else _replace_customers(before, customers, part.customers)
    )
    kept = baseline.unmapped[~baseline.unmapped["customer_id"].isin(customers)]
    unmapped = kept if part is None else pd.concat([kept, part.unmapped], ignore_index=True)
    unmapped = unmapped.sort_values("subscription_id", kind="stable").reset_index(drop=True)
    verdict = evaluate_gate(policy, phase, notable, customer_rows, unmapped)
    counts = {str(k): int(v) for k, v in baseline.summary.get("counts", {}).items()}
    if part is not None:
        old_invoices = before.loc[before["customer_id"].isin(customers), "invoices"].fillna(0).sum()
        counts["invoices_compared"] += int(part.counts["invoices_compared"]) - int(old_invoices)
        counts["protected_subscriptions"] += (
            int(part.counts["protected_subscriptions"]) - protected_before
        )
    counts["customers"] = int(customer_rows["customer_id"].nunique())
    monthly = baseline.monthly if baseline.monthly is not None else pd.DataFrame()
    # Issued and recomputed legacy revenue do not change (the same subscriptions stay
    # mapped); the new model's monthly revenue is not rebuilt by a scoped check.
    monthly = monthly.reindex(columns=list(MONTHLY_COLUMNS)).astype(MONTHLY_COLUMNS)
    monthly["new_total"] = pd.array([pd.NA] * len(monthly), dtype="Int64")
    result = ReconciliationResult(
        phase=phase,
        phase_name=str(baseline.summary.get("phase_name", "")) if part is None else part.phase_name,
        generated_at=pd.Timestamp(window.as_of),
        findings=notable,
        customers=customer_rows,
        monthly=monthly,
        exceptions={
            "unmapped": unmapped,
            "quarantined": read_quarantine(snapshot_dir),
            "unexplained": notable[notable["cause"] == "unexplained"],
            "drift": notable[(notable["comparison"] == "A") & (notable["level"] == "invoice")],
            "pricing_errors": pd.DataFrame() if part is None else part.pricing_errors,
        },
        verdict=verdict,
        fingerprints=dict(fingerprints),
        findings_file=merged_file,
        finding_stats=_stats(table).as_summary(),
        counts=counts,
        pricing_window=(window.as_of, window.start, window.end),
    )
    return result, _diff(merged)


def _diff(merged: Merged) -> FindingsDiff:
    """The findings against the baseline's: only the re-reconciled customers' can differ."""
    columns = list(DIFF_COLUMNS)
    sub = compare_tables(merged.fresh.select(columns), merged.replaced.select(columns))
    kept = merged.findings.num_rows - merged.fresh.num_rows
    net = {}
    for currency in sorted(set(merged.baseline_net) | set(sub.net)):
        before = merged.baseline_net.get(currency, 0)
        sub_before, sub_now = sub.net.get(currency, (0, 0))
        net[currency] = (before, before - sub_before + sub_now)
    return FindingsDiff(sub.changes, sub.unchanged + kept, net)


def temporary_work(work_dir: Path | None) -> tempfile.TemporaryDirectory[str]:
    """A working folder for a scoped check's files."""
    return tempfile.TemporaryDirectory(prefix="shadowbill-scoped-", dir=work_dir)
