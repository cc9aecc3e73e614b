"""``migrate watch``: shadow billing after the cut-over, comparison D for a cut-over batch.

Each run holds the target's issued invoices (a snapshot read back from Stripe with
``shadowbill extract --source stripe:``) against the new model for the same elapsed periods,
with the usage the target metered, and against the legacy engine continued in the shadow
(the impact customers actually saw, beside the one comparison B promised); it proves the
hand-over (no gap, no overlap, no period invoiced by both engines) and records the run in
the ledger, so a batch's history reads "verified before, matched after N cycles".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from shadowbill.errors import MigrationError
from shadowbill.ledger import Ledger
from shadowbill.ledger import states as st
from shadowbill.migrate.batch_files import write_csv
from shadowbill.migrate.batch_inputs import batch_inputs, batch_plan
from shadowbill.reconcile.compare_d import compare_actual, handover_findings
from shadowbill.reconcile.findings import with_customer_names
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.rollout import load_rollout

WATCH_ACTION = "watch"


@dataclass(frozen=True)
class WatchResult:
    """One run of comparison D for a batch."""

    batch_id: str
    run: int  # the how-many-th watch of the batch
    cycles: int  # elapsed target periods compared (subscription x period)
    matched: int  # of those, the ones whose issued invoice equals the model's to the minor unit
    findings: int
    handover_findings: int
    out_dir: Path

    @property
    def ok(self) -> bool:
        """True when every issued invoice matched and the hand-over is clean."""
        return self.findings == 0


def _with_usage(snapshot: Snapshot, usage: pd.DataFrame) -> Snapshot:
    """The snapshot with the target's metered usage added for the periods after the cut-over."""
    if usage.empty:
        return snapshot
    tables = dict(snapshot.tables)
    own = tables["usage"]
    keys = ["subscription_id", "meter", "period_start"]
    merged = pd.concat([own, usage[own.columns]], ignore_index=True)
    tables["usage"] = merged.drop_duplicates(keys, keep="last").reset_index(drop=True)
    return Snapshot(tables, snapshot.quarantine, snapshot.manifest)


def _restrict(frame: pd.DataFrame, column: str, ids: set[str]) -> pd.DataFrame:
    return frame[frame[column].astype(str).isin(ids)]


def watch_batch(
    ledger: Ledger,
    batch_id: str,
    *,
    actual_dir: Path,
    legacy_dir: Path | None = None,
    snapshot_dir: Path | None = None,
    rollout_path: Path | None = None,
) -> WatchResult:
    """Comparison D for a cut-over batch against a snapshot read back from the target.

    ``legacy_dir`` is the legacy estate extracted again after the cut-over (the legacy
    engine runs on in the shadow); without it the snapshot the batch was planned from is
    used, which proves the target side of the hand-over only.
    """
    from shadowbill.reconcile.phase_part import Window, price_sides

    batch = ledger.batch(batch_id)
    if batch.status != st.CUT_OVER:
        raise MigrationError(
            f"batch {batch_id} is {batch.status}: watch compares a cut-over batch's real invoices"
            " (cut the batch over first)"
        )
    inputs = batch_inputs(ledger, batch_id, snapshot_dir=snapshot_dir, rollout_path=rollout_path)
    rollout = load_rollout(inputs.rollout_path)
    subs = ledger.subscriptions(batch_id, state=st.CUT_OVER)
    ids = set(subs["subscription_id"].astype(str))
    actual = read_snapshot(Path(actual_dir))
    a_inv = _restrict(actual["invoices"], "subscription_id", ids)
    a_inv = a_inv[a_inv["status"].astype(str) != "void"]
    a_lines = actual["invoice_lines"][
        actual["invoice_lines"]["invoice_id"].isin(a_inv["invoice_id"])
    ]
    extracted = pd.Timestamp(str(actual.manifest.get("extracted_at") or pd.Timestamp.now("UTC")))
    if extracted.tzinfo is None:
        extracted = extracted.tz_localize("UTC")

    planned = read_snapshot(inputs.snapshot_dir)
    subset, plan = batch_plan(planned, rollout, inputs.phase, sorted(ids), inputs.as_of)
    metered = _restrict(actual["usage"], "subscription_id", ids)
    subset = _with_usage(subset, metered)
    plan = replace(plan, snapshot=_with_usage(plan.snapshot, metered))
    first = pd.to_datetime(subs["first_target_period_start"], utc=True)
    start = pd.Timestamp(first.min())
    end = max(extracted, pd.Timestamp(a_inv["period_end"].max()) if len(a_inv) else extracted)
    sides = price_sides(subset, plan, rollout, Window(pd.Timestamp(plan.as_of), start, end))

    starts = pd.DataFrame(
        {"subscription_id": subs["subscription_id"].astype(str), "first": first.to_numpy()}
    )

    issued = set(
        a_inv["subscription_id"].astype(str)
        + "@"
        + pd.to_datetime(a_inv["period_start"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )

    def elapsed(invoices: pd.DataFrame) -> pd.DataFrame:
        """The model's periods after the hand-over that the target has invoiced or should have
        by now (licensed charges are invoiced in advance: once a period has begun)."""
        keyed = invoices.assign(subscription_id=invoices["subscription_id"].astype(str))
        keyed = keyed.merge(starts, on="subscription_id", how="inner")
        key = (
            keyed["subscription_id"] + "@" + keyed["period_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        due = (keyed["period_start"] <= extracted) | key.isin(issued)
        keep = (keyed["period_start"] >= keyed["first"]) & due
        return invoices[invoices["invoice_id"].isin(keyed.loc[keep, "invoice_id"])]

    m_inv = elapsed(sides.new.invoices)
    m_lines = sides.new.lines[sides.new.lines["invoice_id"].isin(m_inv["invoice_id"])]
    found = compare_actual(m_inv, m_lines, a_inv, a_lines)

    legacy = read_snapshot(Path(legacy_dir)) if legacy_dir is not None else planned
    currency = subset["subscriptions"].set_index(
        subset["subscriptions"]["subscription_id"].astype(str)
    )["currency"]
    handover = pd.DataFrame(
        {
            "subscription_id": subs["subscription_id"].astype(str),
            "customer_id": subs["customer_id"].astype(str),
            "currency": subs["subscription_id"].astype(str).map(currency),
            "paid_through": pd.to_datetime(subs["paid_through"], utc=True),
        }
    )
    hand = handover_findings(handover, legacy["invoices"], actual["invoices"])
    findings = (
        pd.concat([f for f in (found, hand) if not f.empty], ignore_index=True)
        if (len(found) or len(hand))
        else found
    )
    findings = with_customer_names(findings, subset["customers"])

    # the impact customers saw, beside the one comparison B promised (totals per subscription)
    l_inv = elapsed(sides.l0.invoices)

    def totals(frame: pd.DataFrame, name: str) -> pd.Series:
        return frame.groupby(frame["subscription_id"].astype(str))["total"].sum().rename(name)

    impact = (
        pd.concat(
            [totals(l_inv, "legacy_continued"), totals(m_inv, "model"), totals(a_inv, "actual")],
            axis=1,
        )
        .fillna(0)
        .astype("int64")
    )
    impact["promised_change"] = impact["model"] - impact["legacy_continued"]
    impact["seen_change"] = impact["actual"] - impact["legacy_continued"]
    impact = impact.rename_axis("subscription_id").reset_index()

    cycles = len(a_inv)
    bad = set(findings.get("invoice_key", pd.Series(dtype="string")).dropna().astype(str))
    keys = (
        a_inv["subscription_id"].astype(str)
        + "@"
        + pd.to_datetime(a_inv["period_start"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    matched = int((~keys.isin(bad)).sum())
    history = ledger.log(batch_id)
    run = int((history["action"] == WATCH_ACTION).sum()) + 1 if len(history) else 1
    out = inputs.out_dir / f"watch-{run:03d}"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "findings.csv", findings)
    write_csv(out / "impact.csv", impact)
    detail = {
        "run": run,
        "actual_snapshot": str(actual_dir),
        "cycles": cycles,
        "matched": matched,
        "findings": len(findings),
        "handover_findings": len(hand),
        "causes": {str(k): int(v) for k, v in findings["cause"].value_counts().items()}
        if len(findings)
        else {},
    }
    (out / "summary.json").write_text(json.dumps(detail, indent=2, sort_keys=True) + "\n", "utf-8")
    ledger.record_watch(batch_id, detail)
    return WatchResult(batch_id, run, cycles, matched, len(findings), len(hand), out)
