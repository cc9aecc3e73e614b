"""Reconcile one rollout phase: translate, price both models, compare, explain, gate.

``reconcile_phase`` (a snapshot in memory) and ``reconcile_files`` (inputs on disk) are
the library calls behind ``shadowbill reconcile`` and ``shadowbill check``. Both cut the
estate into partitions of whole customers (``shadowbill.snapshot.partitions``), run each with the
chosen executor, and combine the shares into one :class:`ReconciliationResult` that the
writers in ``shadowbill.reports`` render. The result is the same whatever the partition
count and the executor.

Passes: (1) the estate's cohort instant, unless the rollout sets ``as_of``; (2) each
partition's earliest legacy period and latest cut-over, which fix the shared pricing
window (skipped for one partition); (3) each partition reconciled over that window;
(4) the report's bounded detail, re-priced for the few customers it can open.

Passes hand work on through the run's folder: pass 2 keeps each partition's plan, pass 3
its findings (Arrow and CSV text, merged by the driver bucket by bucket) and the rows of
its own detail candidates, from which pass 4 prices the customers finally chosen.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shadowbill.listing import first_few
from shadowbill.reconcile.executors import Executor, Progress, Task, run_tasks
from shadowbill.reconcile.findings_spill import merge_csv, merge_spills
from shadowbill.reconcile.gate import evaluate_gate
from shadowbill.reconcile.phase_part import (
    Bounds,
    PhasePart,
    Window,
    combine_bridge,
    combine_counts,
    combine_customers,
    combine_cutover,
    combine_drift,
    combine_monthly,
    combine_notable,
    combine_pricing_errors,
    combine_revenue,
    combine_run_rate,
    combine_stats,
    combine_unmapped,
    combine_waterfall,
    plan_bounds,
    price_sides,
    reconcile_part,
    window_of,
)
from shadowbill.reconcile.policy import Policy, load_policy
from shadowbill.reconcile.result import LINE_COLUMNS, ReconciliationResult, empty_frame
from shadowbill.reconcile.views import (
    detail_customers,
    detail_lines,
    plan_diffs,
    plan_moves_view,
    restrict,
    sort_detail_lines,
)
from shadowbill.snapshot.buckets import SHARED_TABLES, snapshot_partition
from shadowbill.snapshot.instants import latest_instant, latest_instant_in
from shadowbill.snapshot.io import (
    file_sha256,
    read_quarantine,
    read_snapshot,
    snapshot_fingerprint,
)
from shadowbill.snapshot.partitions import bucket_of, check_partitions, partition_of
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.cohort import as_of_for
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Rollout, load_rollout
from shadowbill.translate.run import translate


@dataclass(frozen=True)
class Options:
    """Knobs of a reconciliation run."""

    projection_months: int = 12  # periods priced after the last cut-over
    detail_customers: int = 300  # customers whose invoices the report can open
    diff_customers: int = 60  # of those, customers with a structured legacy-vs-new diff
    partitions: int = 1  # customers hashed into this many partitions
    executor: Executor = field(default_factory=Executor)
    # Where partitions write their findings (a fresh temporary folder when None); on a
    # Dask cluster of several machines it must be a folder every worker sees.
    work_dir: Path | None = None


@dataclass(frozen=True)
class PartJob:
    """What one partition task needs: where its inputs are and what it shares with the rest.

    Inputs are paths for worker processes and Dask; in-process runs may pass the objects.
    """

    source: Path | Snapshot
    rollout: Path | Rollout
    policy: Path | Policy | None
    phase: int
    partition: int
    partitions: int
    projection_months: int
    spill_dir: Path
    as_of: pd.Timestamp | None = None
    window: Window | None = None
    detail_limit: int = 300  # pass 3 keeps the rows of this many local detail candidates
    chosen: tuple[str, ...] = ()  # pass 4: the customers the report can open
    diff_customers: tuple[str, ...] = ()  # pass 4: of those, the ones with a diff
    detail_partitions: tuple[int, ...] = ()  # pass 4: the partitions this task covers


class _Workdir:
    """The run's working folder: a fresh temporary one unless given; removed with the result."""

    def __init__(self, given: Path | None) -> None:
        if given is None:
            self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
                prefix="shadowbill-run-"
            )
            self.path = Path(self._tmp.name)
        else:
            self._tmp = None
            self.path = Path(given).resolve() / f"run-{uuid.uuid4().hex[:12]}"
            self.path.mkdir(parents=True, exist_ok=True)
            weakref.finalize(self, shutil.rmtree, self.path, True)


def _rollout(job: PartJob) -> Rollout:
    """The job's rollout: the object in process, read from its file in a worker."""
    return job.rollout if isinstance(job.rollout, Rollout) else load_rollout(job.rollout)


def _policy(job: PartJob) -> Policy:
    """The job's policy: the object in process, read from its file in a worker."""
    if job.policy is None:
        return load_policy(None)
    return job.policy if isinstance(job.policy, Policy) else load_policy(job.policy)


def read_partition(
    source: Path | Snapshot, partition: int, partitions: int, *, skip: tuple[str, ...] = ()
) -> Snapshot:
    """The snapshot rows of one partition's customers, from memory or from disk."""
    if isinstance(source, Snapshot):
        return snapshot_partition(source, partition, partitions)
    return read_snapshot(source, partition=partition, partitions=partitions, skip=skip)


def _plan_file(job: PartJob) -> Path:
    return job.spill_dir / f"plan-{job.partition:03d}-of-{job.partitions:03d}.pickle"


def bounds_task(job: PartJob) -> Bounds:
    """Pass 2: one partition's earliest legacy period and latest cut-over.

    The partition's plan is kept in the run's folder for pass 3, which then does not
    translate again (translation never reads invoice lines, so neither does this pass).
    """
    snapshot = read_partition(job.source, job.partition, job.partitions, skip=("invoice_lines",))
    plan = translate(snapshot, _rollout(job), job.phase, as_of=job.as_of)
    path = _plan_file(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        pickle.dump(plan, out, protocol=pickle.HIGHEST_PROTOCOL)
    return plan_bounds(plan, snapshot)


def _kept_plan(job: PartJob) -> Plan | None:
    """The plan pass 2 kept for this partition, if it did (a file of this run's own folder)."""
    path = _plan_file(job)
    if not path.is_file():
        return None
    with open(path, "rb") as kept:
        plan = pickle.load(kept)  # written by bounds_task of this same run
    return plan if isinstance(plan, Plan) and plan.as_of == job.as_of else None


def _detail_file(job: PartJob, partition: int) -> Path:
    return job.spill_dir / f"detail-{partition:03d}-of-{job.partitions:03d}.pickle"


def part_task(job: PartJob) -> tuple[PhasePart, Window]:
    """Pass 3: reconcile one partition over the shared window.

    The snapshot rows of the partition's own detail candidates (the customers the report
    could open, were this partition the estate) are kept in the run's folder: the estate's
    choice is always among them, so pass 4 need not read the partition again.
    """
    snapshot = read_partition(job.source, job.partition, job.partitions)
    part, window = reconcile_part(
        snapshot,
        _rollout(job),
        job.phase,
        _policy(job),
        job.window,
        job.spill_dir / f"findings-{job.partition:03d}-of-{job.partitions:03d}.arrow",
        projection_months=job.projection_months,
        plan=_kept_plan(job),
        as_of=job.as_of,
    )
    _plan_file(job).unlink(missing_ok=True)
    if job.detail_limit > 0:
        candidates = detail_customers(part.customers, part.notable, job.detail_limit)
        kept = _customers_only(snapshot, candidates)
        with open(_detail_file(job, job.partition), "wb") as out:
            pickle.dump(kept, out, protocol=pickle.HIGHEST_PROTOCOL)
    return part, window


def _customers_only(snapshot: Snapshot, customer_ids: pd.Index) -> Snapshot:
    """The rows of these customers only (tax rates kept whole)."""
    customers = snapshot["customers"]
    subs = snapshot["subscriptions"]
    subset = restrict(snapshot, subs.loc[subs["customer_id"].isin(customer_ids), "subscription_id"])
    return Snapshot(
        {**subset.tables, "customers": customers[customers["customer_id"].isin(customer_ids)]}
    )


def _customers_of(source: Path | Snapshot, partitions: int) -> Callable[[int], str]:
    def who(k: int) -> str:
        try:
            ids = read_partition(source, k, partitions)["customers"]["customer_id"]
        except Exception:  # the partition may not even read; still name it
            return "customers that could not be listed"
        return f"{len(ids):,} customers: {first_few(ids)}" if len(ids) else "no customers"

    return who


def _run_parts(
    source: Path | Snapshot,
    inputs: tuple[Path | Rollout, Path | Policy | None],
    rollout: Rollout,
    phase: int,
    options: Options,
    progress: Progress | None,
    spill_dir: Path,
    as_of: pd.Timestamp | None = None,
) -> tuple[list[PhasePart], PartJob]:
    """Passes 1 to 3 over every partition; the parts and the job template with the window.

    ``inputs`` are the rollout and policy as the tasks get them (paths for worker processes
    and Dask, objects in process); ``rollout`` is the driver's own. ``as_of`` None takes the
    cohort instant from the rollout, else from the estate's data (pass 1).
    """
    partitions = options.partitions
    check_partitions(partitions)
    base = PartJob(
        source,
        inputs[0],
        inputs[1],
        phase,
        0,
        partitions,
        options.projection_months,
        spill_dir,
        as_of=as_of,
        detail_limit=options.detail_customers,
    )

    def jobs(**changes: object) -> list[Task[PartJob]]:
        made = [replace(base, partition=k, **changes) for k in range(partitions)]  # type: ignore[arg-type]
        return [Task(job.partition, job) for job in made]

    who = _customers_of(source, partitions)
    run = options.executor
    if partitions == 1:
        part, window = run_tasks(
            part_task,
            jobs(),
            run,
            stage="reconcile",
            who=who,
            rows=lambda r: r[0].counts["invoices_compared"],
            progress=progress,
        )[0]
        return [part], replace(base, as_of=window.as_of, window=window)
    if as_of is None:
        latest = None
        if rollout.spec.as_of is None:  # pass 1: the latest instant the estate's data reaches
            latest = (
                latest_instant(source)
                if isinstance(source, Snapshot)
                else latest_instant_in(source)
            )
        as_of = as_of_for(rollout, latest)
    bounds = run_tasks(
        bounds_task, jobs(as_of=as_of), run, stage="plan", who=who, progress=progress
    )
    window = window_of(as_of, bounds, options.projection_months)
    results = run_tasks(
        part_task,
        jobs(as_of=as_of, window=window),
        run,
        stage="reconcile",
        who=who,
        rows=lambda r: r[0].counts["invoices_compared"],
        progress=progress,
    )
    return [r[0] for r in results], replace(base, as_of=as_of, window=window)


def _detail_rows(job: PartJob, partition: int, chosen: pd.Index) -> Snapshot:
    """The chosen customers' rows that one partition holds, from what pass 3 kept."""
    holding = partition_of(bucket_of(pd.Series(chosen, dtype="string")), job.partitions)
    mine = chosen[np.asarray(holding) == partition]
    path = _detail_file(job, partition)
    if path.is_file():
        with open(path, "rb") as kept:
            candidates = pickle.load(kept)  # written by part_task of this same run
        if mine.isin(candidates["customers"]["customer_id"]).all():
            return _customers_only(candidates, mine)
    return _customers_only(read_partition(job.source, partition, job.partitions), mine)


def detail_task(job: PartJob) -> tuple[pd.DataFrame, dict[str, object]]:
    """Pass 4: side-by-side lines and diffs of the chosen customers these partitions hold."""
    chosen = pd.Index(job.chosen)
    if job.window is None or not len(chosen):
        return empty_frame(LINE_COLUMNS), {}
    shares = [_detail_rows(job, k, chosen) for k in job.detail_partitions]
    subset = Snapshot(
        {
            name: (
                shares[0][name]
                if name in SHARED_TABLES
                else pd.concat([share[name] for share in shares], ignore_index=True)
            )
            for name in shares[0].tables
        }
    )
    if subset["customers"].empty:
        return empty_frame(LINE_COLUMNS), {}
    rollout = _rollout(job)
    plan = translate(subset, rollout, job.phase, as_of=job.window.as_of)
    sides = price_sides(subset, plan, rollout, job.window, text=True)
    lines = detail_lines(chosen, subset, sides.l0, sides.new, job.window.start)
    return lines, plan_diffs(plan, subset, pd.Index(job.diff_customers))


def _detail(
    base: PartJob, executor: Executor, chosen: pd.Index, diff_count: int
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Pass 4 over the partitions holding chosen customers; lines and diffs in one order.

    The partitions are dealt into a few tasks (one per worker), each translating and
    pricing its share of the chosen customers at once.
    """
    holding = partition_of(bucket_of(pd.Series(chosen, dtype="string")), base.partitions)
    wanted = sorted(set(int(k) for k in holding))
    groups = min(len(wanted), 1 if executor.workers <= 1 and not executor.dask_address else 4)
    jobs = [
        Task(
            wanted[g],
            replace(
                base,
                partition=wanted[g],
                chosen=tuple(chosen),
                diff_customers=tuple(chosen[:diff_count]),
                detail_partitions=tuple(wanted[g::groups]),
            ),
        )
        for g in range(groups)
    ]
    results = run_tasks(detail_task, jobs, executor, stage="detail")
    if not results:
        return empty_frame(LINE_COLUMNS), {}
    lines = sort_detail_lines(pd.concat([r[0] for r in results], ignore_index=True))
    diffs: dict[str, object] = {}
    for _, part_diffs in results:
        diffs.update(part_diffs)
    return lines, {k: diffs[k] for k in sorted(diffs)}


def _assemble(
    parts: list[PhasePart],
    window: Window,
    phase: int,
    policy: Policy,
    quarantine: pd.DataFrame,
    fingerprints: dict[str, str] | None,
    options: Options,
    detail: Callable[[pd.Index, int], tuple[pd.DataFrame, dict[str, object]]],
    workdir: _Workdir,
) -> ReconciliationResult:
    """One result from every partition's share: combined frames, the verdict, the detail."""
    findings = combine_notable(parts)
    spills = [p.spill for p in parts]
    # The findings files are written while the detail pass runs: both merges spend their
    # time in Arrow's writer and in the kernel, outside the interpreter lock.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadowbill-merge") as merges:
        parquet_done = merges.submit(merge_spills, spills, workdir.path / "findings.parquet")
        csv_done = merges.submit(merge_csv, spills, workdir.path / "findings.csv")
        customers = combine_customers(parts)
        unmapped = combine_unmapped(parts)
        verdict = evaluate_gate(policy, phase, findings, customers, unmapped)
        chosen = detail_customers(customers, findings, options.detail_customers)
        lines, diffs = detail(chosen, options.diff_customers)
        findings_file, findings_csv = parquet_done.result(), csv_done.result()
    for p in parts:
        p.spill.path.unlink(missing_ok=True)
        if p.spill.csv is not None:
            p.spill.csv.unlink(missing_ok=True)
    counts = combine_counts(parts)
    return ReconciliationResult(
        phase=phase,
        phase_name=parts[0].phase_name,
        generated_at=pd.Timestamp(window.as_of),
        findings=findings,
        customers=customers,
        waterfall=combine_waterfall(parts),
        monthly=combine_monthly(parts),
        revenue=combine_revenue(parts),
        run_rate=combine_run_rate(parts),
        bridge=combine_bridge(parts),
        cutover=combine_cutover(parts),
        plan_moves=plan_moves_view(customers),
        lines=lines,
        exceptions={
            "unmapped": unmapped,
            "quarantined": quarantine,
            "unexplained": findings[findings["cause"] == "unexplained"],
            "drift": combine_drift(parts),
            "pricing_errors": combine_pricing_errors(parts),
        },
        diffs=diffs,
        verdict=verdict,
        fingerprints=dict(fingerprints or {}),
        findings_file=findings_file,
        findings_csv_file=findings_csv,
        finding_stats=combine_stats(parts).as_summary(),
        pricing_window=(window.as_of, window.start, window.end),
        workdir=workdir,
        counts={
            "cohort_subscriptions": counts["cohort_subscriptions"],
            "mapped_subscriptions": counts["mapped_subscriptions"],
            "unmapped_subscriptions": counts["unmapped_subscriptions"],
            "protected_subscriptions": counts["protected_subscriptions"],
            "customers": int(customers["customer_id"].nunique()),
            "invoices_compared": counts["invoices_compared"],
            "legacy_invoices_checked": counts["legacy_invoices_checked"],
            "projected_until": int(window.end.value // 10**9),
            "history_until": counts["history_until"],
            "quarantined_rows": len(quarantine),
        },
    )


def reconcile_phase(
    snapshot: Snapshot,
    rollout: Rollout,
    phase: int,
    policy: Policy,
    *,
    fingerprints: dict[str, str] | None = None,
    options: Options = Options(),
    progress: Progress | None = None,
    as_of: pd.Timestamp | None = None,
) -> ReconciliationResult:
    """Reconcile one phase of a snapshot in memory: comparisons A and B, customers, verdict.

    The partitions run in this process (the snapshot is already in memory). ``as_of`` is
    the instant cohorts are judged at (a batch's plan instant); None takes the rollout's,
    else the latest instant of the snapshot's data.
    """
    in_process = replace(options, executor=Executor(retries=options.executor.retries))
    workdir = _Workdir(options.work_dir)
    parts, base = _run_parts(
        snapshot, (rollout, policy), rollout, phase, in_process, progress, workdir.path, as_of
    )
    assert base.window is not None  # set by _run_parts
    result = _assemble(
        parts,
        base.window,
        phase,
        policy,
        snapshot.quarantine,
        fingerprints,
        options,
        lambda chosen, n: _detail(base, in_process.executor, chosen, n),
        workdir,
    )
    return _with_names(result, rollout)


def reconcile_files(
    snapshot_dir: Path,
    rollout_path: Path,
    phase: int,
    policy_path: Path | None,
    *,
    options: Options = Options(),
    progress: Progress | None = None,
) -> ReconciliationResult:
    """Reconcile a phase from inputs on disk, partition by partition, with their fingerprints.

    With one partition in process the snapshot is read once; otherwise every task reads
    its own partition, so memory is bounded by a partition, not by the estate.
    """
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
    single = options.partitions == 1 and options.executor.workers <= 1
    if single and not options.executor.dask_address:
        snapshot = read_snapshot(snapshot_dir)
        return reconcile_phase(
            snapshot,
            rollout,
            phase,
            policy,
            fingerprints=fingerprints,
            options=options,
            progress=progress,
        )
    source = Path(snapshot_dir).resolve()
    workdir = _Workdir(options.work_dir)
    if options.executor.dask_address:
        _check_cluster(options.executor.dask_address, source, rollout, policy_path, workdir.path)
    in_process = options.executor.workers <= 1 and not options.executor.dask_address
    inputs: tuple[Path | Rollout, Path | Policy | None] = (
        (rollout, policy)
        if in_process
        else (
            Path(rollout.path).resolve(),
            None if policy_path is None else Path(policy_path).resolve(),
        )
    )
    parts, base = _run_parts(
        source,
        inputs,
        rollout,
        phase,
        options,
        progress,
        workdir.path,
    )
    quarantine = _quarantine(source)
    assert base.window is not None  # set by _run_parts
    result = _assemble(
        parts,
        base.window,
        phase,
        policy,
        quarantine,
        fingerprints,
        options,
        lambda chosen, n: _detail(base, options.executor, chosen, n),
        workdir,
    )
    return _with_names(result, rollout)


def _with_names(result: ReconciliationResult, rollout: Rollout) -> ReconciliationResult:
    """The result with the names people use for prices (catalog nicknames) and rules."""
    result.price_names = {
        **rollout.catalogs.legacy.display_names(),
        **rollout.catalogs.new.display_names(),
    }
    result.rule_descriptions = {
        rule.id: (rule.description or "").strip()
        for phase in rollout.spec.phases
        for rule in phase.rules
    }
    return result


def _check_cluster(
    address: str, source: Path, rollout: Rollout, policy_path: Path | None, work: Path
) -> None:
    """Stop before the first partition if a Dask worker cannot see this run's files."""
    from shadowbill.reconcile.dask_cluster import check_workers, connect, warn_about

    read = {
        "the snapshot": source,
        "the rollout": Path(rollout.path).resolve(),
        "the legacy catalog": Path(rollout.legacy_catalog_path).resolve(),
        "the new catalog": Path(rollout.new_catalog_path).resolve(),
    }
    if policy_path is not None:
        read["the policy"] = Path(policy_path).resolve()
    with connect(address) as client:
        warn_about(check_workers(client, read, work))


def _quarantine(snapshot_dir: Path) -> pd.DataFrame:
    """The snapshot's whole quarantine, and nothing else (every partition reads it too)."""
    return read_quarantine(snapshot_dir)
