"""``migrate verify``: comparison C for every applied subscription, the target's preview against the model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import stripe

from shadowbill.errors import (
    MigrationError,
    ShadowbillError,
)
from shadowbill.ledger import Ledger
from shadowbill.ledger import states as st
from shadowbill.migrate.batch_files import (
    VERIFY_FILE,
    write_csv,
)
from shadowbill.migrate.batch_inputs import (
    batch_plan,
    load_batch,
    open_target,
)
from shadowbill.snapshot.tables import Snapshot
from shadowbill.targets.operations import cutover_facts
from shadowbill.targets.stripe_api import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RATE_LIMIT,
    DEFAULT_TIMEOUT,
    StripeTarget,
    scrub_key,
)
from shadowbill.translate.rollout import Rollout


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
        return sid, cid, None, scrub_key(str(exc))
    except stripe.StripeError as exc:
        return sid, cid, None, scrub_key(str(exc.user_message or type(exc).__name__))


def model_first_invoices(
    snapshot: Snapshot, rollout: Rollout, phase: int, starts: pd.DataFrame, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The new model's first invoice after the cut-over of each subscription (and its lines).

    ``starts`` has subscription_id, first_target_period_start; ``as_of`` is the plan's. The batch is priced with price protection over its first target periods.
    """
    from shadowbill.reconcile.phase_part import Window, price_sides

    subset, plan = batch_plan(snapshot, rollout, phase, starts["subscription_id"], as_of)
    first = pd.to_datetime(starts["first_target_period_start"], utc=True)
    facts = cutover_facts(plan, subset)
    end = pd.Timestamp(facts["first_target_period_end"].max())
    # a backdated subscription's first target period starts at its anchor, later than planned
    shift = pd.Timestamp(first.max()) - pd.Timestamp(facts["first_target_period_start"].min())
    end = end + max(shift, pd.Timedelta(0))
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
    stripe_target = open_target(api_key, base_url, rate_limit, concurrency, http_client, timeout)
    loaded = load_batch(
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
        loaded.inputs.as_of,
    )
    previewed = {sid for sid, _, _ in previews}
    m_inv = m_inv[m_inv["subscription_id"].astype(str).isin(previewed)]
    m_lines = m_lines[m_lines["invoice_id"].isin(m_inv["invoice_id"])]
    findings = compare_cutover(m_inv, m_lines, p_inv, p_lines)
    write_csv(path, findings)

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
