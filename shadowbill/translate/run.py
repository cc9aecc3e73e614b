"""Translate a legacy snapshot into the new model for one rollout phase: the migration plan.

1. Eligible subscriptions go to the first phase whose cohort selector matches them
   (``cohort.select_cohort``).
2. Each cohort subscription's item history is cut into segments of constant items and
   every segment is matched against the phase's rules: one boolean mask per rule over all
   segments, first match by ``argmax`` (``phase_mapping.map_phase``). The rule of the
   current segment sets the cut-over, the discount policy and any price protection.
3. Subscriptions that cannot be mapped are listed with a reason (``unmapped``); the
   others become the new model's snapshot (``plan_tables``) and assignments
   (``plan_assignments``).

Everything is vectorized over frames; loops run over phases, rules and their items.
The plan's snapshot is priced with ``target_price_catalog(rollout)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.snapshot.tables import Snapshot
from shadowbill.translate.cohort import metered_prices, product_of, resolve_as_of, select_cohort
from shadowbill.translate.item_text import item_labels, join_per_group
from shadowbill.translate.keys import isin
from shadowbill.translate.phase_mapping import map_phase
from shadowbill.translate.plan import ASSIGNMENT_COLUMNS, Plan, pin
from shadowbill.translate.plan_assignments import (
    assignments_frame,
    protections_frame,
    state_segments,
)
from shadowbill.translate.plan_tables import lineage_frame, new_snapshot
from shadowbill.translate.rollout import Catalogs, Rollout, target_price_catalog
from shadowbill.translate.rule_match import NO_MATCH
from shadowbill.translate.unmapped import unmapped_subscriptions

__all__ = ["Plan", "select_cohort", "target_price_catalog", "translate"]


def translate(
    snapshot: Snapshot,
    rollout: Rollout,
    phase: int,
    *,
    catalogs: Catalogs | None = None,
    as_of: pd.Timestamp | None = None,
) -> Plan:
    """The migration plan of ``phase``: its cohort's subscriptions in the new model.

    ``catalogs`` replaces the rollout's own (to try a catalog under review). ``as_of``
    overrides the instant taken from the snapshot (a partition of an estate must use the
    estate's). Every cohort subscription is in exactly one of ``plan.assignments`` and
    ``plan.unmapped``.
    """
    phase_spec = rollout.phase(phase)
    cats = catalogs or rollout.catalogs
    target = target_price_catalog(rollout, cats)
    as_of = resolve_as_of(snapshot, rollout) if as_of is None else as_of
    cohort = select_cohort(snapshot, rollout, phase, as_of=as_of, catalogs=cats)
    pm = map_phase(
        snapshot["subscription_items"],
        cohort,
        phase_spec,
        as_of,
        product_of(cats),
        list(rollout.spec.seat_prices),
    )
    metered = metered_prices(cats.legacy, target)
    # Readable item lists only where they are shown: current states and unmatched segments.
    shown = np.zeros(len(pm.seg_rule), dtype=bool)
    state = state_segments(pm)
    shown[state[state >= 0]] = True
    shown[pm.seg_rule == NO_MATCH] = True
    items = pm.segments.items
    items = items[shown[items["seg"].to_numpy()]]
    legacy_labels = join_per_group(
        items["seg"], item_labels(items["price_id"], items["quantity"], metered)
    )
    unmapped = unmapped_subscriptions(pm, target, legacy_labels)
    mapped = ~isin(pm.cohort["subscription_id"], unmapped["subscription_id"])

    lineage = lineage_frame(pm, mapped)
    assignments = assignments_frame(pm, mapped, legacy_labels, metered)
    tables, counts = new_snapshot(snapshot, pm, mapped, assignments, lineage)
    assignments = assignments.drop(columns=["discounts_carried", "discounts_dropped"]).merge(
        counts, on="subscription_id", how="left"
    )
    assignments = pin(
        assignments.fillna({"discounts_carried": 0, "discounts_dropped": 0}), ASSIGNMENT_COLUMNS
    )
    tables.manifest.update(
        {
            "kind": "plan",
            "rollout": rollout.name,
            "phase": phase,
            "as_of": pd.Timestamp(as_of).isoformat(),
            "catalog": target.catalog,
        }
    )
    return Plan(
        phase=phase,
        phase_name=phase_spec.name,
        as_of=as_of,
        snapshot=tables,
        assignments=assignments,
        protections=protections_frame(pm, assignments),
        unmapped=unmapped,
        lineage=lineage,
        cohort_size=len(cohort),
        warnings=rollout.warnings,
    )
