"""``migrate apply``: create a batch on the target (or write it as files), recording every object in the ledger."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import stripe

from shadowbill.errors import (
    GateClosedError,
    MigrationError,
)
from shadowbill.ledger import Batch, Ledger, LedgerError
from shadowbill.ledger import states as st
from shadowbill.ledger.lease_records import DEFAULT_LEASE_SECONDS, lease_holder
from shadowbill.migrate.batch_files import (
    FOLLOWUPS_FILE,
    OPERATIONS_FILE,
    STRIPE_CSV_FILE,
)
from shadowbill.migrate.batch_inputs import (
    SHARED_KINDS,
    SHOW,
    SUBSCRIPTION_KINDS,
    TARGETS,
    batch_operations,
    load_batch,
    open_target,
)
from shadowbill.targets.api_version import STRIPE_API_VERSION
from shadowbill.targets.backdating import backdate_operations
from shadowbill.targets.jsonl import write_jsonl
from shadowbill.targets.model import Operation, recorded_kind
from shadowbill.targets.stripe_api import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    ApplyReport,
    StripeTarget,
)
from shadowbill.targets.stripe_csv import write_stripe_csv


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
    # subscriptions whose paid-through was past: backdated, hand-over moved to the anchor
    backdated: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        """True when no subscription failed."""
        return not self.failed


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
    stripe_target = open_target(
        api_key, base_url, rate_limit, concurrency, http_client, timeout, customer_search
    )
    _open_gate(ledger, batch, force_reason)
    loaded = load_batch(ledger, batch_id, overrides)
    _subset, plan, ops = batch_operations(loaded, batch_id)
    # a paid-through already past cannot be an anchor: backdate (targets/backdating.py)
    ops, backdated = backdate_operations(
        ops, plan.snapshot["subscriptions"], pd.Timestamp.now(tz="UTC")
    )
    holder = lease_holder(ledger.actor)
    ledger.acquire_lease(batch_id, holder)  # a live lease of another apply refuses here
    try:
        with _heartbeat(ledger, batch_id, holder):
            return _apply_leased(
                ledger,
                batch_id,
                ops,
                stripe_target,
                backdated,
                on_start=on_start,
                progress=progress,
            )
    finally:
        ledger.release_lease(batch_id, holder)


@contextmanager
def _heartbeat(ledger: Ledger, batch_id: str, holder: str) -> Iterator[None]:
    """Renew the apply lease every quarter of its length while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(DEFAULT_LEASE_SECONDS / 4):
            with suppress(LedgerError):  # a busy ledger: the next beat, well before expiry
                ledger.renew_lease(batch_id, holder)

    thread = threading.Thread(target=beat, name=f"lease-{batch_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _apply_leased(
    ledger: Ledger,
    batch_id: str,
    ops: list[Operation],
    stripe_target: StripeTarget,
    backdated: pd.DataFrame | None,
    *,
    on_start: Callable[[int, int], None] | None,
    progress: Callable[[int, int], None] | None,
) -> ApplyResult:
    """The apply itself, run while this process holds the batch's lease."""
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
                recorded_kind(op),
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
            recorded_kind(op),
            target_id,
            op.idempotency_key,
            op.subscription_id,
            customer_id=op.customer_id,
        )

    if on_start is not None:
        on_start(len(ops), sum(1 for op in ops if op.key in known))
    report = stripe_target.apply(ops, known=known, on_created=on_created, progress=progress)
    return _record_apply(ledger, batch_id, ops, report, backdated)


def _record_apply(
    ledger: Ledger,
    batch_id: str,
    ops: list[Operation],
    report: ApplyReport,
    backdated: pd.DataFrame | None = None,
) -> ApplyResult:
    """Subscription states and target ids from an apply report; the batch's status."""
    ids = report.ids
    states_now = ledger.subscriptions(batch_id)[["subscription_id", "state"]]
    state_of = dict(zip(states_now["subscription_id"], states_now["state"], strict=True))
    applied: list[str] = []
    failed: dict[str, str] = {}
    targets: list[dict[str, object]] = []
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
    moved: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    if backdated is not None and len(backdated):
        created = {op.subscription_id for op in ops if op.key in report.created}
        for row in backdated.itertuples():
            if str(row.subscription_id) in created:
                moved[str(row.subscription_id)] = (
                    pd.Timestamp(str(row.paid_through)),
                    pd.Timestamp(str(row.anchor)),
                )
    for t in targets:
        if t["subscription_id"] in moved:
            # the legacy engine bills [paid-through, anchor): the hand-over is the anchor
            anchor = moved[t["subscription_id"]][1]
            t["paid_through"] = anchor
            t["first_target_period_start"] = anchor
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
        "stripe_api_version": STRIPE_API_VERSION,
        "created": len(report.created),
        "reused": len(report.reused),
        "known": len(report.known),
        "failed": dict(list(failed.items())[:SHOW]),
    }
    if moved:
        detail["backdated"] = {
            sid: f"legacy paid through {t.isoformat()}; Stripe bills from {a.isoformat()}"
            for sid, (t, a) in list(moved.items())[:SHOW]
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
        backdated=backdated,
    )


def _write_target_files(
    ledger: Ledger,
    batch_id: str,
    target: str,
    out_dir: Path | None,
    overrides: Mapping[str, Path | None],
) -> ApplyResult:
    """``--target jsonl|csv``: the batch's operations as files (ids the ledger has filled in)."""
    loaded = load_batch(ledger, batch_id, overrides)
    _subset, _plan, ops = batch_operations(loaded, batch_id)
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
