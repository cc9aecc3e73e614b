"""The phased migration runner: plan, gate, apply, verify, cut over and roll back batches.

Every step reads and writes the migration ledger (:mod:`shadowbill.ledger`), so that any
step can be rerun, after a crash at any point, without duplicating anything on the target.

- :func:`plan_batch` chooses the next batch of a phase (:mod:`.batch_select`), translates
  it, and records it with the fingerprints of its inputs (snapshot, its shared tables,
  rollout, both catalogs, policy, and the operations themselves) and one fingerprint per
  customer (:mod:`.customer_fingerprints`); it writes the operations for review into the
  batch folder (``operations.jsonl``, Stripe's migration toolkit CSV).
- :func:`gate_batch` reconciles the batch's subscriptions alone and records the verdict.
- :func:`apply_batch` re-reads the inputs and stops when a batch customer's rows, the
  rollout, a catalog or the policy changed since the plan; then it creates the batch on
  the target through :class:`~shadowbill.targets.stripe_api.StripeTarget`, recording each
  created object in the ledger before any operation that depends on it starts. Objects the
  ledger already has are not sent again; an object created but not recorded (a crash
  between the answer and the ledger write) is found again by its Idempotency-Key or its
  lookup, never created twice.
- :func:`verify_batch` compares the target's invoice preview of every applied subscription
  with the new model's first invoice after the cut-over (comparison C).
- :func:`cutover_batch` writes the hand-over file, runs the legacy stop-billing statement
  for exactly those subscriptions in one transaction, and marks them cut over.
- :func:`rollback_batch` removes what the batch created, in reverse order, and returns its
  subscriptions to the pool.

Every step re-translates the batch from the same inputs, pinned to the plan's ``as_of``
(the instant cohorts were judged at), over the batch's subscriptions alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd
import sqlalchemy as sa
import stripe

from shadowbill.csv_cells import neutralise_frame
from shadowbill.errors import (
    GateClosedError,
    InputsChangedError,
    MigrationError,
    ShadowbillError,
)
from shadowbill.ledger import Batch, Ledger, LedgerError
from shadowbill.ledger import states as st
from shadowbill.migrate.batch_select import Selection, select_batch
from shadowbill.reconcile.policy import Policy, load_policy
from shadowbill.snapshot.buckets import subscriptions_only
from shadowbill.snapshot.fingerprints import (
    changed_customers,
    customer_fingerprints,
    shared_fingerprint,
)
from shadowbill.snapshot.io import file_sha256, mask_password, read_snapshot, snapshot_fingerprint
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.jsonl import operation_line, write_jsonl
from shadowbill.targets.model import KIND_ORDER, Operation
from shadowbill.targets.operations import build_operations, cutover_facts
from shadowbill.targets.stripe_api import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    KEY_SHAPE,
    ApplyReport,
    StripeTarget,
)
from shadowbill.targets.stripe_csv import write_stripe_csv
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Rollout, load_rollout
from shadowbill.translate.run import translate

DEFAULT_BATCHES_DIR: Final = Path(".shadowbill") / "batches"
DEFAULT_BATCH_SIZE: Final = 50
SHOW: Final = 10  # ids named in an error message
SUBSCRIPTION_KINDS: Final = ("subscription", "subscription_schedule")
# Objects a batch may share with other batches: found by id / lookup key, or a customer
# whose other subscriptions are in another batch.
SHARED_KINDS: Final = frozenset(KIND_ORDER) - set(SUBSCRIPTION_KINDS)
TARGETS: Final = ("stripe", "jsonl", "csv")
# The files of a batch folder.
OPERATIONS_FILE: Final = "operations.jsonl"
STRIPE_CSV_FILE: Final = "stripe_migration.csv"
FOLLOWUPS_FILE: Final = "stripe_followups.jsonl"
SELECTION_FILE: Final = "selection.csv"
PLAN_FILE: Final = "plan.json"
GATE_FILE: Final = "gate_findings.csv"
VERIFY_FILE: Final = "verify_findings.csv"
CUTOVER_FILE: Final = "cutover.csv"
_IDS_PARAM = re.compile(r":subscription_ids\b")
_ID_PARAM = re.compile(r":subscription_id\b")
_FILE_INPUTS: Final = ("rollout", "legacy_catalog", "new_catalog", "policy")


# ------------------------------------------------------------------ results ----


@dataclass
class PlanResult:
    """What ``plan`` recorded and wrote."""

    batch_id: str
    phase: int
    out_dir: Path
    selection: pd.DataFrame  # the batch's subscriptions with their risk columns
    pool_size: int
    matched: int
    operations: dict[str, int]  # operations per kind, in creation order
    customers: int
    first_period: tuple[pd.Timestamp | None, pd.Timestamp | None]
    fingerprints: dict[str, str]
    files: dict[str, Path]
    followups: int = 0

    def describe(self) -> list[str]:
        """Lines for a person: what the batch would do."""
        lo, hi = self.first_period
        kinds = ", ".join(f"{n} {k}" for k, n in self.operations.items())
        return [
            f"batch {self.batch_id} (phase {self.phase}): {len(self.selection)} subscriptions "
            f"of {self.customers} customers, chosen from {self.matched} matching of "
            f"{self.pool_size} not yet migrated",
            f"operations: {sum(self.operations.values())} ({kinds})",
            f"first target periods start from {_day(lo)} to {_day(hi)}",
            f"written to {self.out_dir}"
            + (f" ({self.followups} toolkit follow-ups)" if self.followups else ""),
        ]


@dataclass
class GateResult:
    """The gate verdict recorded for a batch."""

    batch_id: str
    passed: bool
    forced_reason: str | None
    failures: list[str]
    findings: int
    unexplained: int
    findings_path: Path

    @property
    def open(self) -> bool:
        """True when the batch may be applied."""
        return self.passed or bool(self.forced_reason)


@dataclass
class ApplyResult:
    """What ``apply`` did."""

    batch_id: str
    target: str
    status: str
    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # subscription -> error
    summary: str = ""
    files: dict[str, Path] = field(default_factory=dict)
    report: ApplyReport | None = None

    @property
    def ok(self) -> bool:
        """True when no subscription failed."""
        return not self.failed


@dataclass
class VerifyResult:
    """What ``verify`` found per applied subscription."""

    batch_id: str
    status: str
    verified: list[str]
    unverified: dict[str, str]  # subscription -> why (unexplained findings, preview error)
    findings: int
    findings_path: Path

    @property
    def ok(self) -> bool:
        """True when every checked subscription was verified."""
        return not self.unverified


@dataclass
class CutoverResult:
    """What ``cutover`` handed over."""

    batch_id: str
    status: str
    cut_over: list[str]
    cutover_path: Path
    statement_rows: int | None = None
    forced: list[str] = field(default_factory=list)


@dataclass
class RollbackResult:
    """What ``rollback`` removed and returned to the pool."""

    batch_id: str
    removed: list[tuple[str, str]]
    kept: list[tuple[str, str]]  # shared with a live batch, or catalog objects kept
    rolled_back: list[str]


# ------------------------------------------------------------------ helpers ----


def _day(value: pd.Timestamp | None) -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def _scrub(text: str, secret: str | None = None) -> str:
    """``text`` without a secret key or anything shaped like one."""
    if secret:
        text = text.replace(secret, "***")
    return KEY_SHAPE.sub("sk_***", text)


def _named(ids: Iterable[str], limit: int = SHOW) -> str:
    """``a, b, c`` (up to ``limit``) and ``(+N more)``."""
    items = list(ids)
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def operations_fingerprint(operations: Iterable[Operation]) -> str:
    """sha256 of the operations as their JSONL text: the exact objects a review saw."""
    digest = hashlib.sha256()
    for op in operations:
        digest.update(operation_line(op).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def pin_as_of(rollout: Rollout, as_of: pd.Timestamp) -> Rollout:
    """The rollout with ``as_of`` fixed, so a batch translates as it did when planned."""
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    spec = rollout.spec.model_copy(update={"as_of": stamp.to_pydatetime()})
    return dataclasses.replace(rollout, spec=spec)


def input_fingerprints(rollout: Rollout, policy_path: Path | None) -> dict[str, str]:
    """sha256 of the rollout file, both catalog files and the policy file."""
    fps = {
        "rollout": file_sha256(Path(rollout.path)),
        "legacy_catalog": file_sha256(Path(rollout.legacy_catalog_path)),
        "new_catalog": file_sha256(Path(rollout.new_catalog_path)),
    }
    if policy_path is not None:
        fps["policy"] = file_sha256(Path(policy_path))
    return fps


def restrict(snapshot: Snapshot, subscription_ids: Iterable[str]) -> Snapshot:
    """The rows of these subscriptions only (customers and tax rates whole)."""
    ids = pd.Series(sorted({str(s) for s in subscription_ids}), dtype="string")
    return subscriptions_only(snapshot, ids)


def batch_plan(
    snapshot: Snapshot, rollout: Rollout, phase: int, subscription_ids: Iterable[str]
) -> tuple[Snapshot, Plan]:
    """The snapshot of these subscriptions alone and their plan (rollout pinned to as_of)."""
    ids = sorted({str(s) for s in subscription_ids})
    subset = restrict(snapshot, ids)
    plan = translate(subset, rollout, phase)
    mapped = set(plan.assignments["subscription_id"].astype(str))
    lost = sorted(set(ids) - mapped)
    if lost:
        raise InputsChangedError(
            f"{len(lost)} subscription(s) of the batch are no longer mapped by phase {phase}: "
            f"{_named(lost)}; roll the batch back and plan again"
        )
    return subset, plan


def _write_json(path: Path, data: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    neutralise_frame(frame).to_csv(
        path, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%SZ"
    )
    return path


def _next_batch_id(ledger: Ledger, phase: int) -> str:
    """``p{phase}-{n:04d}`` with n one more than the highest of that phase."""
    pattern = re.compile(rf"^p{phase}-(\d+)$")
    ids: list[str] = ledger.batches(phase)["batch_id"].astype(str).tolist()
    numbers = [int(m[1]) for b in ids if (m := pattern.match(str(b)))]
    return f"p{phase}-{max(numbers, default=0) + 1:04d}"


# ------------------------------------------------------------------ loading ----


@dataclass(frozen=True)
class BatchInputs:
    """Where a batch's inputs are and the instant it was planned at (from the ledger)."""

    phase: int
    as_of: pd.Timestamp
    snapshot_dir: Path
    rollout_path: Path
    policy_path: Path | None
    out_dir: Path


def batch_inputs(
    ledger: Ledger,
    batch_id: str,
    *,
    snapshot_dir: Path | None = None,
    rollout_path: Path | None = None,
    policy_path: Path | None = None,
    out_dir: Path | None = None,
) -> BatchInputs:
    """The inputs ``plan`` recorded for a batch; any of them may be given anew (moved files)."""
    batch = ledger.batch(batch_id)
    log = ledger.log(batch_id)
    detail: dict[str, Any] = {}
    for row in log.itertuples():
        if row.action == "plan" and isinstance(row.detail, dict) and "as_of" in row.detail:
            detail = row.detail
            break
    if not detail:
        raise MigrationError(
            f"batch {batch_id} has no plan record with its inputs in the ledger {ledger.url}; "
            "plan batches with `shadowbill migrate plan`"
        )
    policy = policy_path or (Path(detail["policy_path"]) if detail.get("policy_path") else None)
    return BatchInputs(
        phase=batch.phase,
        as_of=pd.Timestamp(detail["as_of"]),
        snapshot_dir=Path(snapshot_dir or detail["snapshot_dir"]),
        rollout_path=Path(rollout_path or detail["rollout_path"]),
        policy_path=policy,
        out_dir=Path(out_dir or detail["out_dir"]),
    )


@dataclass(frozen=True)
class _Loaded:
    """A batch's inputs, checked against its plan's fingerprints."""

    batch: Batch
    inputs: BatchInputs
    rollout: Rollout  # pinned to the plan's as_of
    policy: Policy
    snapshot: Snapshot
    subscriptions: pd.DataFrame  # the ledger's rows of the batch


def _load(ledger: Ledger, batch_id: str, overrides: Mapping[str, Path | None]) -> _Loaded:
    """Read a batch's inputs and stop when anything it was planned from has changed."""
    batch = ledger.batch(batch_id)
    inputs = batch_inputs(ledger, batch_id, **{k: v for k, v in overrides.items()})
    rollout = load_rollout(inputs.rollout_path)
    policy = load_policy(inputs.policy_path)
    now = input_fingerprints(rollout, inputs.policy_path)
    files = {
        "rollout": rollout.path,
        "legacy_catalog": rollout.legacy_catalog_path,
        "new_catalog": rollout.new_catalog_path,
        "policy": inputs.policy_path,
    }
    for name in _FILE_INPUTS:
        was = batch.fingerprints.get(name)
        if was is not None and now.get(name) != was:
            raise InputsChangedError(
                f"the {name.replace('_', ' ')} {files[name]} changed since batch {batch_id} was "
                "planned; restore it, or roll the batch back and plan again"
            )
    snapshot = read_snapshot(inputs.snapshot_dir)
    shared = batch.fingerprints.get("snapshot_shared")
    if shared is not None and shared_fingerprint(snapshot) != shared:
        raise InputsChangedError(
            f"the snapshot's shared tables (tax_rates) in {inputs.snapshot_dir} changed since "
            f"batch {batch_id} was planned; roll the batch back and plan again"
        )
    subs = ledger.subscriptions(batch_id)
    recorded = dict(zip(subs["customer_id"], subs["customer_fingerprint"], strict=True))
    recorded = {k: (None if v in ("None", "nan", "") else v) for k, v in recorded.items()}
    current = customer_fingerprints(snapshot, recorded)
    changed = changed_customers(recorded, current)
    if changed:
        raise InputsChangedError(
            f"{len(changed)} customer(s) of batch {batch_id} changed in the snapshot "
            f"{inputs.snapshot_dir} since the plan: {_named(changed)}; roll the batch back "
            "and plan again (their rows are not what the gate saw)"
        )
    return _Loaded(batch, inputs, pin_as_of(rollout, inputs.as_of), policy, snapshot, subs)


def _operations(loaded: _Loaded, batch_id: str) -> tuple[Snapshot, Plan, list[Operation]]:
    """The batch's operations, rebuilt from its inputs and checked against the plan's."""
    ids = loaded.subscriptions["subscription_id"].tolist()
    subset, plan = batch_plan(loaded.snapshot, loaded.rollout, loaded.inputs.phase, ids)
    ops = build_operations(plan, loaded.rollout, subset, batch_id=batch_id, subscription_ids=ids)
    was = loaded.batch.fingerprints.get("operations")
    if was is not None and operations_fingerprint(ops) != was:
        raise InputsChangedError(
            f"the operations of batch {batch_id} differ from the ones reviewed at plan "
            f"({OPERATIONS_FILE}); roll the batch back and plan again"
        )
    return subset, plan, ops


# ------------------------------------------------------------------ plan ----


def plan_batch(
    ledger: Ledger,
    *,
    rollout_path: Path,
    phase: int,
    snapshot_dir: Path,
    policy_path: Path | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    where: str | None = None,
    out_dir: Path | None = None,
    batch_id: str | None = None,
    rank_by_risk: bool = True,
    batches_dir: Path = DEFAULT_BATCHES_DIR,
) -> PlanResult:
    """Choose, translate and record the next batch of a phase; write its operations for review."""
    from shadowbill.reconcile.run import Options, reconcile_phase

    rollout = load_rollout(rollout_path)
    policy = load_policy(policy_path)
    snapshot = read_snapshot(Path(snapshot_dir))
    plan = translate(snapshot, rollout, phase)
    pinned = pin_as_of(rollout, plan.as_of)
    taken = ledger.taken_subscriptions()
    pool_ids = plan.assignments.loc[
        ~plan.assignments["subscription_id"].astype(str).isin(taken), "subscription_id"
    ]
    if pool_ids.empty:
        raise MigrationError(
            f"phase {phase} has no mapped subscription left to plan: {len(plan.assignments)} "
            f"mapped, all in live batches; {len(plan.unmapped)} unmapped (fix the rollout rules)"
        )
    risk: dict[str, pd.DataFrame | None] = {}
    if rank_by_risk:
        result = reconcile_phase(
            restrict(snapshot, pool_ids),
            pinned,
            phase,
            policy,
            options=Options(detail_customers=0, diff_customers=0),
        )
        risk = {
            "customers": result.customers,
            "findings": result.findings,
            "pricing_errors": result.exceptions.get("pricing_errors"),
        }
    selection: Selection = select_batch(
        plan, snapshot, taken, batch_size=batch_size, where=where, **risk
    )
    if selection.batch.empty:
        raise MigrationError(
            f"no subscription of phase {phase} matches --where {where!r} "
            f"({selection.pool_size} not yet migrated)"
        )
    chosen = selection.batch
    ids = chosen["subscription_id"].astype(str).tolist()
    customers = sorted(set(chosen["customer_id"].astype(str)))
    subset, bplan = batch_plan(snapshot, pinned, phase, ids)
    facts = cutover_facts(bplan, subset)
    facts = facts[facts["subscription_id"].astype(str).isin(ids)]
    fps_customers = customer_fingerprints(snapshot, customers)
    base_fps = {
        "snapshot": snapshot_fingerprint(Path(snapshot_dir), verify=False),
        "snapshot_shared": shared_fingerprint(snapshot),
        **input_fingerprints(rollout, Path(policy_path) if policy_path else None),
    }
    rows = chosen[["subscription_id", "customer_id"]].merge(
        facts[["subscription_id", "paid_through", "first_target_period_start"]],
        on="subscription_id",
        how="left",
    )
    rows["customer_fingerprint"] = rows["customer_id"].map(fps_customers).astype(str)

    for attempt in range(5):
        bid = batch_id or _next_batch_id(ledger, phase)
        ops = build_operations(bplan, pinned, subset, batch_id=bid, subscription_ids=ids)
        folder = Path(out_dir) if out_dir is not None else Path(batches_dir) / bid
        folder = folder.resolve()
        files = _write_plan_files(folder, ops, chosen)
        fingerprints = {**base_fps, "operations": operations_fingerprint(ops)}
        counts: dict[str, int] = {
            k: n for k in KIND_ORDER if (n := sum(1 for o in ops if o.kind == k))
        }
        starts = facts["first_target_period_start"]
        first = (
            None if starts.empty else pd.Timestamp(starts.min()),
            None if starts.empty else pd.Timestamp(starts.max()),
        )
        detail = {
            "as_of": pd.Timestamp(plan.as_of).isoformat(),
            "snapshot_dir": str(Path(snapshot_dir).resolve()),
            "rollout_path": str(Path(rollout_path).resolve()),
            "policy_path": str(Path(policy_path).resolve()) if policy_path else None,
            "out_dir": str(folder),
            "where": where,
            "batch_size": batch_size,
            "ranked_by_risk": rank_by_risk,
            "pool": selection.pool_size,
            "matched": selection.matched,
            "customers": len(customers),
            "operations": counts,
            "first_target_period": [_day(first[0]), _day(first[1])],
        }
        try:
            ledger.create_batch(phase, rows, fingerprints, batch_id=bid, detail=detail)
        except LedgerError as exc:
            if batch_id is None and "already exists" in str(exc) and attempt < 4:
                continue  # another planner took this id meanwhile: take the next one
            raise
        _write_json(folder / PLAN_FILE, {"batch_id": bid, "phase": phase, **detail})
        files["plan"] = folder / PLAN_FILE
        followups = _count_lines(files.get("followups"))
        return PlanResult(
            batch_id=bid,
            phase=phase,
            out_dir=folder,
            selection=chosen,
            pool_size=selection.pool_size,
            matched=selection.matched,
            operations=counts,
            customers=len(customers),
            first_period=first,
            fingerprints=fingerprints,
            files=files,
            followups=followups,
        )
    raise MigrationError(f"could not find a free batch id for phase {phase}")  # pragma: no cover


def _count_lines(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def _write_plan_files(folder: Path, ops: list[Operation], chosen: pd.DataFrame) -> dict[str, Path]:
    """operations.jsonl, the Stripe toolkit CSV (+ follow-ups) and the selection."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"operations": write_jsonl(ops, folder / OPERATIONS_FILE)}
    files["stripe_csv"] = write_stripe_csv(
        ops, folder / STRIPE_CSV_FILE, followups_path=folder / FOLLOWUPS_FILE
    )
    files["followups"] = folder / FOLLOWUPS_FILE
    files["selection"] = _write_csv(folder / SELECTION_FILE, chosen)
    return files


# ------------------------------------------------------------------ gate ----


def gate_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    force_reason: str | None = None,
    snapshot_dir: Path | None = None,
    rollout_path: Path | None = None,
    policy_path: Path | None = None,
) -> GateResult:
    """Reconcile the batch's subscriptions alone with the policy and record the verdict."""
    from shadowbill.reconcile.run import Options, reconcile_phase

    batch = ledger.batch(batch_id)
    if batch.status not in st.GATEABLE:
        raise MigrationError(
            f"batch {batch_id} is {batch.status}: its gate is recorded before apply "
            f"(batch {', '.join(sorted(st.GATEABLE))})"
        )
    loaded = _load(
        ledger,
        batch_id,
        {"snapshot_dir": snapshot_dir, "rollout_path": rollout_path, "policy_path": policy_path},
    )
    ids = loaded.subscriptions["subscription_id"]
    result = reconcile_phase(
        restrict(loaded.snapshot, ids),
        loaded.rollout,
        batch.phase,
        loaded.policy,
        fingerprints=dict(batch.fingerprints),
        options=Options(detail_customers=0, diff_customers=0),
    )
    findings = result.findings
    path = _write_csv(loaded.inputs.out_dir / GATE_FILE, findings)
    failures = [f"{c.name}: {c.detail}" for c in result.verdict.failures]
    unexplained = int((findings["cause"] == "unexplained").sum()) if len(findings) else 0
    detail = {
        "checks": {c.name: {"passed": c.passed, "value": c.value} for c in result.verdict.checks},
        "failures": failures[:SHOW],
        "findings": len(findings),
        "unexplained": unexplained,
        "mapped": result.counts.get("mapped_subscriptions"),
    }
    passed = bool(result.verdict.passed)
    reason = force_reason.strip() if force_reason and not passed else None
    ledger.record_gate(
        batch_id, "pass" if passed else "fail", forced_reason=reason or None, detail=detail
    )
    return GateResult(batch_id, passed, reason, failures, len(findings), unexplained, path)


# ------------------------------------------------------------------ apply ----


def _target(
    api_key: str | None,
    base_url: str | None,
    rate_limit: float,
    concurrency: int,
    http_client: stripe.HTTPClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    customer_search: bool = True,
) -> StripeTarget:
    return StripeTarget(
        api_key,
        base_url=base_url,
        rate_limit=rate_limit,
        concurrency=concurrency,
        http_client=http_client,
        timeout=timeout,
        search_lookups=customer_search,
    )


def _root_failure(key: str, report: ApplyReport, seen: set[str] | None = None) -> str:
    """Why an operation failed or was skipped, down to the failure that caused it."""
    seen = seen or set()
    if key in report.failed:
        failure = report.failed[key]
        return f"{failure.key}: {failure.message}"
    why = report.skipped.get(key, "not applied")
    match = re.match(r"depends on (\S+), which failed", why)
    if match and match[1] not in seen:
        seen.add(key)
        return _root_failure(match[1], report, seen)
    return f"{key}: {why}"


def _open_gate(ledger: Ledger, batch: Batch, force_reason: str | None) -> None:
    """Refuse an ungated or failed batch unless forced with a reason (recorded in the log)."""
    if batch.gate_open:
        return
    verdict = batch.gate_verdict or "not gated"
    reason = (force_reason or "").strip()
    if not reason:
        raise GateClosedError(
            f"batch {batch.batch_id} has not passed its gate ({verdict}); run "
            f"`shadowbill migrate gate --batch {batch.batch_id}`, or apply with "
            "--force --reason '...'"
        )
    ledger.record_gate(
        batch.batch_id,
        "fail",
        forced_reason=reason,
        detail={"forced_by": "apply", "previous_verdict": verdict},
    )


def apply_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    target: str = "stripe",
    base_url: str | None = None,
    rate_limit: float = DEFAULT_RATE_LIMIT,
    concurrency: int = DEFAULT_CONCURRENCY,
    api_key: str | None = None,
    force_reason: str | None = None,
    out_dir: Path | None = None,
    snapshot_dir: Path | None = None,
    rollout_path: Path | None = None,
    policy_path: Path | None = None,
    on_start: Callable[[int, int], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    http_client: stripe.HTTPClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    customer_search: bool | None = None,
) -> ApplyResult:
    """Create the batch on the target (or write it as JSONL / Stripe CSV); safe to rerun.

    ``on_start(operations, already_recorded)`` is called just before the first request.
    ``customer_search``: search the target for each customer before creating it (Stripe's
    Search API allows 20 requests/s, which then bounds the pace). ``None`` (auto) searches
    only when the batch was applied before (a resumed or repeated apply, whose customers
    may exist unrecorded after a crash): on a first apply no customer of the batch can be
    on the target unless the ledger was lost (then pass True). Retries and reruns within
    Stripe's 24-hour idempotency window never duplicate either way (Idempotency-Key).
    """
    if target not in TARGETS:
        raise MigrationError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")
    batch = ledger.batch(batch_id)
    overrides = {
        "snapshot_dir": snapshot_dir,
        "rollout_path": rollout_path,
        "policy_path": policy_path,
    }
    if target != "stripe":
        return _write_target_files(ledger, batch_id, target, out_dir, overrides)
    if batch.status in (st.VERIFIED, st.CUT_OVER, st.ROLLED_BACK):
        raise MigrationError(
            f"batch {batch_id} is {batch.status}: there is nothing left to apply"
            + ("; plan a new batch" if batch.status == st.ROLLED_BACK else "")
        )
    if customer_search is None:
        customer_search = batch.status not in (st.PLANNED, st.GATED)
    stripe_target = _target(
        api_key, base_url, rate_limit, concurrency, http_client, timeout, customer_search
    )
    _open_gate(ledger, batch, force_reason)
    loaded = _load(ledger, batch_id, overrides)
    _subset, _plan, ops = _operations(loaded, batch_id)
    ledger.set_batch_status(batch_id, st.APPLYING)

    live = ledger.objects(batch_id, live_only=True)
    known = dict(zip(live["op_key"], live["target_id"], strict=True))
    for op in ops:
        if op.key in known or op.kind not in SHARED_KINDS:
            continue
        other = ledger.any_object_id(op.key)  # created by another batch: reuse, record here too
        if other is not None:
            ledger.record_object(
                batch_id,
                op.key,
                op.kind,
                other,
                op.idempotency_key,
                op.subscription_id,
                customer_id=op.customer_id,
            )
            known[op.key] = other

    def on_created(op: Operation, target_id: str) -> None:
        ledger.record_object(
            batch_id,
            op.key,
            op.kind,
            target_id,
            op.idempotency_key,
            op.subscription_id,
            customer_id=op.customer_id,
        )

    if on_start is not None:
        on_start(len(ops), sum(1 for op in ops if op.key in known))
    report = stripe_target.apply(ops, known=known, on_created=on_created, progress=progress)
    return _record_apply(ledger, batch_id, ops, report)


def _record_apply(
    ledger: Ledger, batch_id: str, ops: list[Operation], report: ApplyReport
) -> ApplyResult:
    """Subscription states and target ids from an apply report; the batch's status."""
    ids = report.ids
    states_now = ledger.subscriptions(batch_id)[["subscription_id", "state"]]
    state_of = dict(zip(states_now["subscription_id"], states_now["state"], strict=True))
    applied: list[str] = []
    failed: dict[str, str] = {}
    targets = []
    for op in ops:
        if op.kind not in SUBSCRIPTION_KINDS or op.subscription_id is None:
            continue
        sid = op.subscription_id
        if op.key in ids:
            applied.append(sid)
            targets.append(
                {
                    "subscription_id": sid,
                    "target_subscription_id": ids[op.key],
                    "target_customer_id": ids.get(f"customer:{op.customer_id}"),
                }
            )
        else:
            failed[sid] = _root_failure(op.key, report)
    if targets:
        ledger.set_targets(batch_id, pd.DataFrame(targets))
    movable = [s for s in applied if state_of.get(s) in (st.PLANNED, st.FAILED)]
    if movable:
        ledger.transition(batch_id, movable, st.APPLIED, detail={"summary": report.summary()})
    to_fail = {s: e for s, e in failed.items() if state_of.get(s) == st.PLANNED}
    if to_fail:
        ledger.transition(batch_id, list(to_fail), st.FAILED, error=to_fail)
    after = ledger.subscriptions(batch_id)["state"]
    done = bool((after.isin([st.APPLIED, st.VERIFIED])).all())
    detail = {
        "summary": report.summary(),
        "created": len(report.created),
        "reused": len(report.reused),
        "known": len(report.known),
        "failed": dict(list(failed.items())[:SHOW]),
    }
    status = st.APPLIED if done else st.FAILED
    ledger.set_batch_status(batch_id, status, detail=detail)
    return ApplyResult(
        batch_id,
        "stripe",
        status,
        applied=sorted(applied),
        failed=failed,
        summary=report.summary(),
        report=report,
    )


def _write_target_files(
    ledger: Ledger,
    batch_id: str,
    target: str,
    out_dir: Path | None,
    overrides: Mapping[str, Path | None],
) -> ApplyResult:
    """``--target jsonl|csv``: the batch's operations as files (ids the ledger has filled in)."""
    loaded = _load(ledger, batch_id, overrides)
    _subset, _plan, ops = _operations(loaded, batch_id)
    folder = Path(out_dir) if out_dir is not None else loaded.inputs.out_dir
    files: dict[str, Path] = {}
    if target == "jsonl":
        files["operations"] = write_jsonl(ops, folder / OPERATIONS_FILE)
    else:
        live = ledger.objects(batch_id, live_only=True)
        id_map = dict(zip(live["op_key"], live["target_id"], strict=True))
        files["stripe_csv"] = write_stripe_csv(
            ops, folder / STRIPE_CSV_FILE, id_map=id_map, followups_path=folder / FOLLOWUPS_FILE
        )
        files["followups"] = folder / FOLLOWUPS_FILE
    batch = ledger.batch(batch_id)
    return ApplyResult(
        batch_id,
        target,
        batch.status,
        summary=f"{len(ops)} operations written for review or import",
        files=files,
    )


# ------------------------------------------------------------------ verify ----


def _preview_one(
    target: StripeTarget, sid: str, cid: str, target_sub: str, target_cus: str
) -> tuple[str, str, dict[str, Any] | None, str | None]:
    """(legacy subscription, legacy customer, preview or None, error or None)."""
    try:
        sub_id = target_sub
        if target_sub.startswith("sub_sched_"):
            sched = target.client.v1.subscription_schedules.retrieve(target_sub).to_dict()
            sub_id = str(sched.get("subscription") or sched.get("released_subscription") or "")
            if not sub_id:
                return sid, cid, None, "its subscription schedule has not started yet"
        return sid, cid, target.preview(target_cus, sub_id), None
    except ShadowbillError as exc:
        return sid, cid, None, _scrub(str(exc))
    except stripe.StripeError as exc:
        return sid, cid, None, _scrub(str(exc.user_message or type(exc).__name__))


def model_first_invoices(
    snapshot: Snapshot, rollout: Rollout, phase: int, starts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The new model's first invoice after the cut-over of each subscription (and its lines).

    ``starts`` has subscription_id, first_target_period_start; ``rollout`` is pinned to the
    plan's as_of. The batch is priced with price protection over its first target periods.
    """
    from shadowbill.reconcile.phase_part import Window, price_sides

    subset, plan = batch_plan(snapshot, rollout, phase, starts["subscription_id"])
    first = pd.to_datetime(starts["first_target_period_start"], utc=True)
    facts = cutover_facts(plan, subset)
    end = pd.Timestamp(facts["first_target_period_end"].max())
    window = Window(pd.Timestamp(plan.as_of), pd.Timestamp(first.min()), end)
    sides = price_sides(subset, plan, rollout, window, text=True)
    invoices, lines = sides.new.invoices, sides.new.lines
    wanted = pd.DataFrame(
        {
            "subscription_id": starts["subscription_id"].astype(str).to_numpy(),
            "period_start": first.astype("datetime64[us, UTC]").to_numpy(),
        }
    )
    keyed = invoices.assign(
        subscription_id=invoices["subscription_id"].astype(str),
        period_start=invoices["period_start"].astype("datetime64[us, UTC]"),
    )
    chosen = keyed.merge(wanted, on=["subscription_id", "period_start"], how="inner")
    chosen = invoices[invoices["invoice_id"].isin(chosen["invoice_id"])]
    return chosen, lines[lines["invoice_id"].isin(chosen["invoice_id"])]


def _cause_counts(findings: pd.DataFrame, subscription_id: str | None) -> dict[str, int]:
    """How many findings of each cause (of one subscription, or all)."""
    if findings.empty:
        return {}
    rows = findings
    if subscription_id is not None:
        rows = findings[findings["subscription_id"].astype(str) == subscription_id]
    counts = rows["cause"].astype(str).value_counts()
    return {str(k): int(v) for k, v in zip(counts.index, counts.to_numpy(), strict=True)}


def verify_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    rate_limit: float = DEFAULT_RATE_LIMIT,
    concurrency: int = DEFAULT_CONCURRENCY,
    snapshot_dir: Path | None = None,
    rollout_path: Path | None = None,
    policy_path: Path | None = None,
    http_client: stripe.HTTPClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> VerifyResult:
    """Comparison C for every applied subscription: the target's preview against the model."""
    from shadowbill.reconcile.compare_c import compare_cutover
    from shadowbill.targets.previews import preview_frames

    batch = ledger.batch(batch_id)
    if batch.status in (st.PLANNED, st.GATED, st.ROLLED_BACK, st.CUT_OVER):
        raise MigrationError(
            f"batch {batch_id} is {batch.status}: verify checks applied subscriptions "
            "(apply the batch first)"
        )
    stripe_target = _target(api_key, base_url, rate_limit, concurrency, http_client, timeout)
    loaded = _load(
        ledger,
        batch_id,
        {"snapshot_dir": snapshot_dir, "rollout_path": rollout_path, "policy_path": policy_path},
    )
    subs = loaded.subscriptions
    todo = subs[subs["state"] == st.APPLIED].reset_index(drop=True)
    path = loaded.inputs.out_dir / VERIFY_FILE
    if todo.empty:
        verified_before = subs.loc[subs["state"] == st.VERIFIED, "subscription_id"].tolist()
        if not verified_before:
            raise MigrationError(f"batch {batch_id} has no applied subscription to verify")
        return VerifyResult(batch_id, batch.status, [], {}, 0, path)

    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        results = list(
            pool.map(
                lambda r: _preview_one(
                    stripe_target,
                    str(r.subscription_id),
                    str(r.customer_id),
                    str(r.target_subscription_id),
                    str(r.target_customer_id),
                ),
                todo.itertuples(),
            )
        )
    errors = {sid: err for sid, _, _, err in results if err is not None}
    previews = [(sid, cid, pv) for sid, cid, pv, err in results if pv is not None]
    objects = ledger.objects(batch_id)
    prices = objects[objects["kind"] == "price"]
    price_ids = {
        str(t): str(k).split(":", 1)[1]
        for t, k in zip(prices["target_id"], prices["op_key"], strict=True)
    }
    p_inv, p_lines = preview_frames(previews, price_ids=price_ids)
    m_inv, m_lines = model_first_invoices(
        loaded.snapshot,
        loaded.rollout,
        batch.phase,
        todo[["subscription_id", "first_target_period_start"]],
    )
    previewed = {sid for sid, _, _ in previews}
    m_inv = m_inv[m_inv["subscription_id"].astype(str).isin(previewed)]
    m_lines = m_lines[m_lines["invoice_id"].isin(m_inv["invoice_id"])]
    findings = compare_cutover(m_inv, m_lines, p_inv, p_lines)
    _write_csv(path, findings)

    unexplained = findings[findings["cause"] == "unexplained"]
    per_sub = unexplained.groupby("subscription_id").size() if len(unexplained) else pd.Series()
    unverified: dict[str, str] = {}
    for sid in todo["subscription_id"].astype(str):
        if sid in errors:
            unverified[sid] = f"no preview: {errors[sid]}"
        elif sid in per_sub.index:
            unverified[sid] = f"{int(per_sub[sid])} unexplained difference(s) ({VERIFY_FILE})"
    verified = [s for s in todo["subscription_id"].astype(str) if s not in unverified]
    summary = {
        "checked": len(todo),
        "verified": len(verified),
        "findings": len(findings),
        "causes": _cause_counts(findings, None),
    }
    if verified:
        ledger.transition(batch_id, verified, st.VERIFIED, detail=summary)
    if unverified:
        per = {
            sid: {"why": why, "causes": _cause_counts(findings, sid)}
            for sid, why in list(unverified.items())[:50]
        }
        ledger.set_batch_status(
            batch_id, ledger.batch(batch_id).status, detail={"verify": summary, "unverified": per}
        )
    states_after = ledger.subscriptions(batch_id)["state"]
    status = ledger.batch(batch_id).status
    if (states_after == st.VERIFIED).all() and status != st.VERIFIED:
        ledger.set_batch_status(batch_id, st.VERIFIED, detail={"verify": summary})
        status = st.VERIFIED
    return VerifyResult(batch_id, status, verified, unverified, len(findings), path)


# ------------------------------------------------------------------ cut over ----


def stop_billing(source_url: str, statement: str, subscription_ids: list[str]) -> int:
    """Run the legacy stop-billing statement for exactly these subscriptions, in ONE transaction.

    A statement with ``:subscription_ids`` runs once with the list bound as an expanding
    ``IN`` parameter; one with ``:subscription_id`` runs once per id. Returns the rows the
    database reports as changed.
    """
    if _IDS_PARAM.search(statement):
        stmt = sa.text(statement).bindparams(sa.bindparam("subscription_ids", expanding=True))
        params: Any = {"subscription_ids": list(subscription_ids)}
    elif _ID_PARAM.search(statement):
        stmt = sa.text(statement)
        params = [{"subscription_id": s} for s in subscription_ids]
    else:
        raise MigrationError(
            "the stop-billing statement must name the subscriptions with :subscription_ids "
            "(a list, e.g. WHERE plan_ref IN :subscription_ids) or :subscription_id (run per id)"
        )
    where = mask_password(source_url)
    try:
        engine = sa.create_engine(source_url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise MigrationError(f"cannot open the legacy source {where}: {exc}") from None
    try:
        with engine.begin() as conn:
            result = conn.execute(stmt, params)
            return int(result.rowcount or 0)
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        raise MigrationError(
            f"the stop-billing statement failed on {where} (nothing was changed): "
            f"{mask_password(first)}"
        ) from None
    finally:
        engine.dispose()


def cutover_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    stop_statement: str | None = None,
    source_url: str | None = None,
    force_reason: str | None = None,
    out_dir: Path | None = None,
) -> CutoverResult:
    """Hand the batch's verified subscriptions over: cutover.csv, stop legacy billing, cut_over."""
    batch = ledger.batch(batch_id)
    if batch.status in (st.CUT_OVER, st.ROLLED_BACK):
        raise MigrationError(f"batch {batch_id} is {batch.status}; nothing to cut over")
    subs = ledger.subscriptions(batch_id)
    reason = (force_reason or "").strip()
    verified = subs[subs["state"] == st.VERIFIED]
    unverified = subs[subs["state"] == st.APPLIED]
    if len(unverified) and not reason:
        raise GateClosedError(
            f"{len(unverified)} subscription(s) of batch {batch_id} are not verified: "
            f"{_named(unverified['subscription_id'])}; run `shadowbill migrate verify --batch "
            f"{batch_id}`, or cut over with --force --reason '...'"
        )
    chosen = pd.concat([verified, unverified] if reason else [verified], ignore_index=True)
    if chosen.empty:
        raise MigrationError(
            f"batch {batch_id} has no verified subscription to cut over "
            f"(states: {subs['state'].value_counts().to_dict()})"
        )
    chosen = chosen.sort_values("subscription_id", ignore_index=True)
    gap = chosen[chosen["paid_through"] != chosen["first_target_period_start"]]
    if len(gap):
        raise MigrationError(
            f"{len(gap)} subscription(s) of batch {batch_id} would leave a gap or an overlap "
            f"(legacy paid-through != first target period start): {_named(gap['subscription_id'])}"
        )
    if stop_statement is not None and not source_url:
        raise MigrationError("a stop-billing statement needs --source (the legacy database URL)")
    folder = Path(out_dir) if out_dir is not None else batch_inputs(ledger, batch_id).out_dir
    handover = pd.DataFrame(
        {
            "legacy_subscription_id": chosen["subscription_id"],
            "paid_through": chosen["paid_through"],
            "target_subscription_id": chosen["target_subscription_id"],
            "first_target_period_start": chosen["first_target_period_start"],
        }
    )
    path = _write_csv(folder / CUTOVER_FILE, handover)
    ids = chosen["subscription_id"].astype(str).tolist()
    rows = None
    if stop_statement is not None and source_url:
        rows = stop_billing(source_url, stop_statement, ids)
    forced = unverified["subscription_id"].astype(str).tolist() if reason else []
    if forced:
        ledger.transition(
            batch_id,
            forced,
            st.VERIFIED,
            detail={"forced": True, "reason": reason, "step": "cutover without verify"},
        )
    detail: dict[str, Any] = {"cutover_file": str(path), "stop_statement_rows": rows}
    if reason:
        detail["forced_reason"] = reason
    ledger.transition(batch_id, ids, st.CUT_OVER, detail=detail)
    states_after = ledger.subscriptions(batch_id)["state"]
    status = ledger.batch(batch_id).status
    if (states_after == st.CUT_OVER).all():
        if status != st.VERIFIED:
            ledger.set_batch_status(batch_id, st.VERIFIED, detail={"forced_reason": reason})
        ledger.set_batch_status(batch_id, st.CUT_OVER, detail=detail)
        status = st.CUT_OVER
    return CutoverResult(batch_id, status, ids, path, rows, forced)


# ------------------------------------------------------------------ rollback ----


def rollback_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    rate_limit: float = DEFAULT_RATE_LIMIT,
    concurrency: int = DEFAULT_CONCURRENCY,
    deactivate_catalog: bool = False,
    force_reason: str | None = None,
    http_client: stripe.HTTPClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> RollbackResult:
    """Remove what the batch created on the target (reverse order); its subscriptions return to the pool."""
    batch = ledger.batch(batch_id)
    if batch.status in (st.CUT_OVER, st.ROLLED_BACK):
        raise MigrationError(
            f"batch {batch_id} is {batch.status}"
            + (
                ": the target bills its subscriptions now; it cannot be rolled back"
                if batch.status == st.CUT_OVER
                else "; nothing to roll back"
            )
        )
    subs = ledger.subscriptions(batch_id)
    cut = subs.loc[subs["state"] == st.CUT_OVER, "subscription_id"].tolist()
    if cut:
        raise MigrationError(
            f"batch {batch_id} cannot be rolled back: {len(cut)} subscription(s) are cut over "
            f"({_named(cut)}) and the target bills them now"
        )
    reason = (force_reason or "").strip()
    if batch.status == st.APPLYING and not reason:
        raise MigrationError(
            f"batch {batch_id} was interrupted while applying: objects created in the last "
            f"moments may not be in the ledger yet; run `shadowbill migrate apply --batch "
            f"{batch_id}` to finish (it records every object), then roll back, or roll back "
            "with --force --reason '...'"
        )
    live = ledger.objects(batch_id, live_only=True)
    statuses = ledger.batches()[["batch_id", "status"]]
    status_of = dict(zip(statuses["batch_id"], statuses["status"], strict=True))
    remove: list[tuple[str, str]] = []
    op_of: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for row in live.itertuples():
        others = [
            b
            for b in ledger.object_batches(str(row.op_key))
            if b != batch_id and status_of.get(b) != st.ROLLED_BACK
        ]
        if others:
            kept.append((str(row.kind), str(row.target_id)))
            continue
        remove.append((str(row.kind), str(row.target_id)))
        op_of[str(row.target_id)] = str(row.op_key)
    removed: list[tuple[str, str]] = []
    if remove:
        target = _target(api_key, base_url, rate_limit, concurrency, http_client, timeout)
        report = target.cancel_and_remove(remove, deactivate_catalog=deactivate_catalog)
        for _kind, tid in [*report.removed, *report.deactivated]:
            ledger.mark_deleted(batch_id, op_of[tid])
        removed = [*report.removed, *report.deactivated]
        kept += report.kept
        if report.failed:
            first = next(iter(report.failed.values()))
            raise MigrationError(
                f"rollback of batch {batch_id}: {len(report.failed)} object(s) could not be "
                f"removed from the target ({_scrub(first)}); run rollback again"
            )
    open_subs = subs.loc[~subs["state"].isin(list(st.FINAL_STATES)), "subscription_id"].tolist()
    detail: dict[str, Any] = {"removed": len(removed), "kept": len(kept)}
    if reason:
        detail["forced_reason"] = reason
    if open_subs:
        ledger.transition(batch_id, open_subs, st.ROLLED_BACK, detail=detail)
    ledger.set_batch_status(batch_id, st.ROLLED_BACK, detail=detail)
    return RollbackResult(batch_id, removed, kept, sorted(open_subs))
