"""``migrate plan``: choose, translate and record the next batch of a phase; write its operations for review."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from shadowbill.errors import (
    MigrationError,
)
from shadowbill.ledger import BatchExistsError, Ledger, LedgerError, PlannedFrom
from shadowbill.ledger import states as st
from shadowbill.migrate.batch_files import (
    DEFAULT_BATCHES_DIR,
    FOLLOWUPS_FILE,
    OPERATIONS_FILE,
    PLAN_FILE,
    SELECTION_FILE,
    STRIPE_CSV_FILE,
    count_lines,
    day_text,
    write_csv,
    write_json,
)
from shadowbill.migrate.batch_inputs import (
    DEFAULT_BATCH_SIZE,
    batch_plan,
    input_fingerprints,
    operations_fingerprint,
    restrict,
)
from shadowbill.migrate.batch_select import Selection, select_batch
from shadowbill.output_folder import FolderTakenError, StagedFolder
from shadowbill.pricing.catalog import Catalog, TaxMode
from shadowbill.reconcile.policy import load_policy
from shadowbill.snapshot.fingerprints import (
    customer_fingerprints,
    shared_fingerprint,
)
from shadowbill.snapshot.io import read_snapshot, snapshot_fingerprint
from shadowbill.targets.api_version import STRIPE_API_VERSION
from shadowbill.targets.customer_links import (
    DEFAULT_METADATA_KEY,
    link_customers,
    linked_ids,
    read_customer_map,
    stripe_setup,
)
from shadowbill.targets.jsonl import write_jsonl
from shadowbill.targets.model import KIND_ORDER, Operation
from shadowbill.targets.operations import build_operations, cutover_facts
from shadowbill.targets.stripe_api import StripeTarget
from shadowbill.targets.stripe_csv import write_stripe_csv
from shadowbill.targets.tax_address import missing_tax_address
from shadowbill.translate.plan import Plan
from shadowbill.translate.rollout import load_rollout, target_price_catalog
from shadowbill.translate.run import translate


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
    stripe: dict[str, Any] = field(default_factory=dict)  # customer_links.stripe_setup

    def stripe_lines(self) -> list[str]:
        """Lines on Stripe's side: customers attached or created, payment methods, terms, tax."""
        s = self.stripe
        if not s:
            return []
        ways = ", ".join(f"{n} by {k}" for k, n in s.get("attached_by", {}).items())
        lines = [
            f"customers: {s['customers_attached']} attached to existing Stripe customers"
            + (f" ({ways})" if ways else "")
            + f", {s['customers_created']} created",
        ]
        if s["without_payment_method"]:
            ids = s["without_payment_method_ids"]
            more = s["without_payment_method"] - len(ids)
            lines.append(
                f"{s['without_payment_method']} customer(s) charged automatically have no "
                f"payment method on Stripe (their first charge would fail): {', '.join(ids[:10])}"
                + (f" and {more + len(ids) - 10} more" if more + len(ids) > 10 else "")
            )
        if s["payment_method_unknown"]:
            lines.append(
                f"{s['payment_method_unknown']} attached customer(s) not checked for a payment "
                "method (no Stripe key at plan)"
            )
        if s.get("held_for_tax_address"):
            lines.append(
                f"{s['held_for_tax_address']} subscription(s) held out: their customer lacks the "
                "address external tax needs (postal code in the US, postal code or state in "
                f"Canada, else the country): {', '.join(s['held_for_tax_address_ids'][:10])}"
            )
        methods = ", ".join(f"{n} {k}" for k, n in s["collection_methods"].items())
        lines.append(
            f"collection: {methods}; tax: {s['tax_mode']}; billing mode: {s['billing_mode']}; "
            f"API version {s['api_version']}"
        )
        return lines

    def describe(self) -> list[str]:
        """Lines for a person: what the batch would do."""
        lo, hi = self.first_period
        kinds = ", ".join(f"{n} {k}" for k, n in self.operations.items())
        return [
            f"batch {self.batch_id} (phase {self.phase}): {len(self.selection)} subscriptions "
            f"of {self.customers} customers, chosen from {self.matched} matching of "
            f"{self.pool_size} not yet migrated",
            f"operations: {sum(self.operations.values())} ({kinds})",
            f"first target periods start from {day_text(lo)} to {day_text(hi)}",
            *self.stripe_lines(),
            f"written to {self.out_dir}"
            + (f" ({self.followups} toolkit follow-ups)" if self.followups else ""),
        ]


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
    customer_map: Path | None = None,
    find_customers: Sequence[str] = (),
    metadata_key: str = DEFAULT_METADATA_KEY,
    target: StripeTarget | None = None,
) -> PlanResult:
    """Choose, translate and record the next batch of a phase; write its operations for review.

    Existing Stripe customers are linked here, once (:mod:`shadowbill.targets.customer_links`):
    the snapshot's ``stripe_customer_id``, then ``customer_map`` (CSV legacy_id,stripe_id),
    then ``find_customers`` searches (``metadata`` under ``metadata_key``, ``email``) on
    ``target``; with a ``target`` every linked customer is checked and its payment method
    looked up. The links are recorded with the batch, so apply attaches the same customers.
    """
    from shadowbill.reconcile.run import Options, reconcile_phase

    rollout = load_rollout(rollout_path)
    policy = load_policy(policy_path)
    snapshot = read_snapshot(Path(snapshot_dir))
    plan = translate(snapshot, rollout, phase)
    as_of = pd.Timestamp(plan.as_of)  # decided once here; every verb of the batch uses it
    taken = ledger.taken_subscriptions()
    held = _held_for_tax_address(plan, target_price_catalog(rollout))
    taken = taken | set(held)
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
            rollout,
            phase,
            policy,
            options=Options(detail_customers=0, diff_customers=0),
            as_of=as_of,
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
    subset, bplan = batch_plan(snapshot, rollout, phase, ids, as_of)
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
    all_customers = subset["customers"]
    links = link_customers(
        all_customers[all_customers["customer_id"].astype(str).isin(customers)],
        mapping=read_customer_map(customer_map) if customer_map is not None else None,
        finder=target,
        search=tuple(find_customers),
        metadata_key=metadata_key,
    )
    attach = linked_ids(links)
    new_catalog = target_price_catalog(rollout)

    if out_dir is not None:
        _check_out_dir(ledger, Path(out_dir).resolve())
    for attempt in range(5):
        bid = batch_id or ledger.next_batch_id(phase)
        ops = build_operations(
            bplan, rollout, subset, batch_id=bid, subscription_ids=ids, links=attach
        )
        stripe_info: dict[str, Any] = {
            "api_version": STRIPE_API_VERSION,
            "held_for_tax_address": len(held),
            "held_for_tax_address_ids": held[:50],
        }
        stripe_info |= stripe_setup(
            ops,
            links,
            tax_mode=str(new_catalog.tax_mode),
            billing_mode=str(new_catalog.billing_mode),
        )
        folder = Path(out_dir) if out_dir is not None else Path(batches_dir) / bid
        folder = folder.resolve()
        # Staged beside the folder and published only once the ledger holds the batch: two
        # planners never write into one folder, and a failed plan leaves no files.
        with StagedFolder(folder, merge=False) as staged:
            files = _write_plan_files(staged.path, ops, chosen)
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
                "first_target_period": [day_text(first[0]), day_text(first[1])],
                "stripe": stripe_info,
                "customer_links": attach,
            }
            try:
                ledger.create_batch(
                    phase,
                    rows,
                    fingerprints,
                    batch_id=bid,
                    detail=detail,
                    planned_from=PlannedFrom(
                        as_of.to_pydatetime(),
                        str(detail["snapshot_dir"]),
                        str(detail["rollout_path"]),
                        None if policy_path is None else str(detail["policy_path"]),
                        str(folder),
                    ),
                )
            except BatchExistsError:
                if batch_id is None and attempt < 4:
                    continue  # another planner took this id meanwhile; its files go
                raise
            files["plan"] = write_json(
                staged.path / PLAN_FILE, {"batch_id": bid, "phase": phase, **detail}
            )
            followups = count_lines(files.get("followups"))
            _publish(ledger, staged, bid)
            files = {name: staged.moved(path) for name, path in files.items()}
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
                stripe=stripe_info,
            )
    raise MigrationError(f"could not find a free batch id for phase {phase}")  # pragma: no cover


def _held_for_tax_address(plan: Plan, catalog: Catalog) -> list[str]:
    """Mapped subscriptions whose customer lacks the address external tax needs (sorted)."""
    if catalog.tax_mode != TaxMode.EXTERNAL:
        return []
    customers = plan.snapshot["customers"]
    lacking = customers.loc[missing_tax_address(customers).to_numpy(), "customer_id"]
    a = plan.assignments
    held = a.loc[a["customer_id"].astype(str).isin(set(lacking.astype(str))), "subscription_id"]
    return sorted(held.astype(str))


def _check_out_dir(ledger: Ledger, folder: Path) -> None:
    """Refuse an --out folder that holds the plan of a batch still live in the ledger."""
    plan_file = folder / PLAN_FILE
    if not plan_file.is_file():
        return
    try:
        other = str(json.loads(plan_file.read_text(encoding="utf-8")).get("batch_id"))
        status = ledger.batch(other).status
    except (OSError, ValueError, AttributeError, LedgerError):
        return
    if status != st.ROLLED_BACK:
        raise MigrationError(
            f"--out {folder} holds the plan of batch {other} ({status}); give another folder "
            "(each batch keeps its own)"
        )


def _publish(ledger: Ledger, staged: StagedFolder, bid: str) -> None:
    """Move the staged files into place; a folder filled meanwhile withdraws the batch."""
    folder = staged.final
    aside: Path | None = None
    if folder.is_dir() and any(folder.iterdir()):  # a rolled-back batch's plan: replace it
        aside = folder.with_name(f".{folder.name}.replaced-{bid}")
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(folder, aside)
    try:
        staged.publish()
    except (FolderTakenError, OSError) as exc:
        reason = f"its plan files could not be published into {folder}: {exc}"
        subs = ledger.subscriptions(bid)["subscription_id"].tolist()
        ledger.transition(bid, subs, st.ROLLED_BACK, detail={"reason": reason})
        ledger.set_batch_status(bid, st.ROLLED_BACK, detail={"reason": reason})
        raise MigrationError(f"batch {bid} withdrawn: {reason}; plan again") from None
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _write_plan_files(folder: Path, ops: list[Operation], chosen: pd.DataFrame) -> dict[str, Path]:
    """operations.jsonl, the Stripe toolkit CSV (+ follow-ups) and the selection."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"operations": write_jsonl(ops, folder / OPERATIONS_FILE)}
    files["stripe_csv"] = write_stripe_csv(
        ops, folder / STRIPE_CSV_FILE, followups_path=folder / FOLLOWUPS_FILE
    )
    files["followups"] = folder / FOLLOWUPS_FILE
    files["selection"] = write_csv(folder / SELECTION_FILE, chosen)
    return files
