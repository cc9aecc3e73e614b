"""A batch's inputs: where they are (from the ledger), reading them back, and checking that
nothing it was planned from has changed since (every verb re-translates the batch from them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd
import stripe

from shadowbill.errors import (
    InputsChangedError,
    MigrationError,
)
from shadowbill.ledger import Batch, Ledger
from shadowbill.listing import first_few
from shadowbill.migrate.batch_files import OPERATIONS_FILE
from shadowbill.reconcile.policy import Policy, load_policy
from shadowbill.snapshot.buckets import subscriptions_only
from shadowbill.snapshot.fingerprints import (
    changed_customers,
    customer_fingerprints,
    shared_fingerprint,
)
from shadowbill.snapshot.io import file_sha256, read_snapshot
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.jsonl import operation_line
from shadowbill.targets.model import KIND_ORDER, Operation
from shadowbill.targets.operations import build_operations
from shadowbill.targets.stripe_api import (
    DEFAULT_TIMEOUT,
    StripeTarget,
)
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import Rollout, load_rollout
from shadowbill.translate.run import translate

DEFAULT_BATCH_SIZE: Final = 50
SHOW: Final = 10  # ids named in an error message
SUBSCRIPTION_KINDS: Final = ("subscription", "subscription_schedule")
# Objects a batch may share with other batches: found by id / lookup key, or a customer
# whose other subscriptions are in another batch.
SHARED_KINDS: Final = frozenset(KIND_ORDER) - set(SUBSCRIPTION_KINDS)
TARGETS: Final = ("stripe", "jsonl", "csv")
FILE_INPUTS: Final = ("rollout", "legacy_catalog", "new_catalog", "policy")


def operations_fingerprint(operations: Iterable[Operation]) -> str:
    """sha256 of the operations as their JSONL text: the exact objects a review saw."""
    digest = hashlib.sha256()
    for op in operations:
        digest.update(operation_line(op).encode())
        digest.update(b"\n")
    return digest.hexdigest()


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
    snapshot: Snapshot,
    rollout: Rollout,
    phase: int,
    subscription_ids: Iterable[str],
    as_of: pd.Timestamp,
) -> tuple[Snapshot, Plan]:
    """The snapshot of these subscriptions alone and their plan, judged at the batch's ``as_of``."""
    ids = sorted({str(s) for s in subscription_ids})
    subset = restrict(snapshot, ids)
    plan = translate(subset, rollout, phase, as_of=as_of)
    mapped = set(plan.assignments["subscription_id"].astype(str))
    lost = sorted(set(ids) - mapped)
    if lost:
        raise InputsChangedError(
            f"{len(lost)} subscription(s) of the batch are no longer mapped by phase {phase}: "
            f"{first_few(lost, SHOW)}; roll the batch back and plan again"
        )
    return subset, plan


@dataclass(frozen=True)
class BatchInputs:
    """Where a batch's inputs are and the instant it was planned at (from the ledger)."""

    phase: int
    as_of: pd.Timestamp
    snapshot_dir: Path
    rollout_path: Path
    policy_path: Path | None
    out_dir: Path
    # legacy customer id -> the existing Stripe customer the plan attached it to
    customer_links: dict[str, str] = field(default_factory=dict)


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
    planned = batch.planned_from
    if planned is None:
        raise MigrationError(
            f"batch {batch_id} has no record of its inputs in the ledger {ledger.url}; "
            "plan batches with `shadowbill migrate plan`"
        )
    policy = policy_path or (Path(planned.policy_path) if planned.policy_path else None)
    # The Stripe customers linked at plan are kept in the plan's audit row (not a column yet).
    detail: dict[str, Any] = {}
    for row in ledger.log(batch_id).itertuples():
        if row.action == "plan" and isinstance(row.detail, dict) and "as_of" in row.detail:
            detail = row.detail
            break
    return BatchInputs(
        customer_links=dict(detail.get("customer_links") or {}),
        phase=batch.phase,
        as_of=pd.Timestamp(planned.as_of),
        snapshot_dir=Path(snapshot_dir or planned.snapshot_dir),
        rollout_path=Path(rollout_path or planned.rollout_path),
        policy_path=policy,
        out_dir=Path(out_dir or planned.out_dir),
    )


@dataclass(frozen=True)
class LoadedBatch:
    """A batch's inputs, checked against its plan's fingerprints."""

    batch: Batch
    inputs: BatchInputs
    rollout: Rollout
    policy: Policy
    snapshot: Snapshot
    subscriptions: pd.DataFrame  # the ledger's rows of the batch


def load_batch(ledger: Ledger, batch_id: str, overrides: Mapping[str, Path | None]) -> LoadedBatch:
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
    for name in FILE_INPUTS:
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
            f"{inputs.snapshot_dir} since the plan: {first_few(changed, SHOW)}; roll the batch back "
            "and plan again (their rows are not what the gate saw)"
        )
    return LoadedBatch(batch, inputs, rollout, policy, snapshot, subs)


def batch_operations(loaded: LoadedBatch, batch_id: str) -> tuple[Snapshot, Plan, list[Operation]]:
    """The batch's operations, rebuilt from its inputs and checked against the plan's."""
    ids = loaded.subscriptions["subscription_id"].tolist()
    subset, plan = batch_plan(
        loaded.snapshot, loaded.rollout, loaded.inputs.phase, ids, loaded.inputs.as_of
    )
    ops = build_operations(
        plan,
        loaded.rollout,
        subset,
        batch_id=batch_id,
        subscription_ids=ids,
        links=loaded.inputs.customer_links,
    )
    was = loaded.batch.fingerprints.get("operations")
    if was is not None and operations_fingerprint(ops) != was:
        raise InputsChangedError(
            f"the operations of batch {batch_id} differ from the ones reviewed at plan "
            f"({OPERATIONS_FILE}); roll the batch back and plan again"
        )
    return subset, plan, ops


def open_target(
    api_key: str | None,
    base_url: str | None,
    rate_limit: float,
    concurrency: int,
    http_client: stripe.HTTPClient | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    customer_search: bool = True,
) -> StripeTarget:
    """The Stripe target the apply, verify and rollback verbs talk to."""
    return StripeTarget(
        api_key,
        base_url=base_url,
        rate_limit=rate_limit,
        concurrency=concurrency,
        http_client=http_client,
        timeout=timeout,
        search_lookups=customer_search,
    )
