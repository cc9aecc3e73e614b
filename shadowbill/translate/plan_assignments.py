"""Per mapped subscription: the rule, cut-over, plans in words, and price protection.

The readable columns describe the current state: the legacy items the subscription has
now and the new items the rule gives them; scheduled switches are listed apart.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from shadowbill.translate.item_text import item_labels, join_per_group
from shadowbill.translate.phase_mapping import PhaseMapping
from shadowbill.translate.plan import ASSIGNMENT_COLUMNS, PROTECTION_COLUMNS, pin
from shadowbill.translate.renewal import add_months
from shadowbill.translate.rule_apply import DROPPED, SWITCHED
from shadowbill.translate.unmapped import date_text

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_TEXT_COLUMNS = (
    "legacy_items",
    "new_items",
    "legacy_plan",
    "new_plan",
    "dropped_items",
    "switches",
    "history_rule_ids",
)


def state_segments(pm: PhaseMapping) -> IntArray:
    """Per cohort subscription: the segment of its current legacy items (-1: none)."""
    frame = pm.segments.frame
    seg_sub = pm.seg_sub
    is_state = (
        frame["start"].reset_index(drop=True) == pm.state_start.iloc[seg_sub].reset_index(drop=True)
    ).fillna(False)
    out = np.full(len(pm.cohort), -1, dtype=np.int64)
    state = is_state.to_numpy(dtype=bool)
    out[seg_sub[state]] = frame["seg"].to_numpy(dtype=np.int64)[state]
    return out


def _history_rules(pm: PhaseMapping) -> pd.Series:
    """Per sub: the rules used over its history, in time order, repeats removed."""
    rule_ids = np.array([r.id for r in pm.phase.rules] + [""], dtype=object)
    seg_sub = pm.seg_sub
    rules = pm.seg_rule
    changed = np.ones(len(rules), dtype=bool)
    changed[1:] = (seg_sub[1:] != seg_sub[:-1]) | (rules[1:] != rules[:-1])
    return join_per_group(pd.Series(seg_sub[changed]), pd.Series(rule_ids[rules[changed]]), ", ")


def _lineage_text(pm: PhaseMapping, state: IntArray) -> tuple[pd.Series, pd.Series]:
    """Per sub: the legacy items dropped in the current state, and the switches."""
    lineage = pm.applied.lineage
    seg = lineage["seg"].to_numpy(dtype=np.int64)
    sub = pm.seg_sub[seg]
    dropped = (lineage["change"] == DROPPED).to_numpy(dtype=bool) & (seg == state[sub])
    d = lineage[dropped]
    dropped_text = join_per_group(
        pd.Series(sub[dropped]), d["legacy_price_id"] + " (" + d["note"] + ")", ", "
    )
    switched = lineage[(lineage["change"] == SWITCHED).to_numpy(dtype=bool)].assign(
        sub=sub[(lineage["change"] == SWITCHED).to_numpy(dtype=bool)]
    )
    switched = switched.drop_duplicates(["sub", "legacy_price_id", "new_price_id"])
    quantity = switched[["seg", "new_price_id"]].merge(
        pm.applied.new_items.rename(columns={"price_id": "new_price_id"}),
        on=["seg", "new_price_id"],
        how="left",
    )["quantity"]
    start = pm.segments.frame["start"].iloc[switched["seg"].to_numpy()].reset_index(drop=True)
    text = (
        switched["legacy_price_id"].reset_index(drop=True)
        + " -> "
        + switched["new_price_id"].reset_index(drop=True)
        + " x"
        + quantity.astype("string").fillna("?")
        + " at "
        + date_text(start)
    )
    return dropped_text, join_per_group(switched["sub"].reset_index(drop=True), text, ", ")


def assignments_frame(
    pm: PhaseMapping, mapped: BoolArray, legacy_labels: pd.Series, metered: dict[str, bool]
) -> pd.DataFrame:
    """One row per mapped subscription (ASSIGNMENT_COLUMNS, discount counts still zero).

    ``mapped`` is aligned with ``pm.cohort``; ``legacy_labels`` is indexed by seg.
    """
    at = np.flatnonzero(mapped)
    rule = pm.rule[at]
    rules = pm.phase.rules
    a = pm.cohort[["subscription_id", "customer_id", "currency"]].iloc[at].reset_index(drop=True)
    a["phase"] = pm.phase.phase
    a["rule_id"] = np.array([r.id for r in rules], dtype=object)[rule]
    a["cutover_at"] = pm.cutover.iloc[at].reset_index(drop=True)
    a["discounts_policy"] = np.array([pm.phase.discounts_of(r) for r in rules], dtype=object)[rule]
    state_of = state_segments(pm)
    state = state_of[at]
    in_state = np.zeros(len(pm.seg_rule), dtype=bool)
    in_state[state] = True
    items = pm.segments.items
    items = items[in_state[items["seg"].to_numpy()]]
    a["legacy_items"] = legacy_labels.reindex(state).to_numpy()
    a["legacy_plan"] = join_per_group(items["seg"], items["price_id"]).reindex(state).to_numpy()
    new = pm.applied.new_items
    new = new[in_state[new["seg"].to_numpy()]]
    new_labels = item_labels(new["price_id"], new["quantity"], metered)
    a["new_items"] = join_per_group(new["seg"], new_labels).reindex(state).to_numpy()
    a["new_plan"] = join_per_group(new["seg"], new["price_id"]).reindex(state).to_numpy()
    dropped, switches = _lineage_text(pm, state_of)
    a["dropped_items"] = dropped.reindex(at).to_numpy()
    a["switches"] = switches.reindex(at).to_numpy()
    a["history_rule_ids"] = _history_rules(pm).reindex(at).to_numpy()
    protected = np.array([r.then.price_protection is not None for r in rules], dtype=bool)
    a["price_protection"] = protected[rule]
    a["discounts_carried"] = 0
    a["discounts_dropped"] = 0
    for column in _TEXT_COLUMNS:
        a[column] = a[column].astype("string").fillna("")
    return pin(a.sort_values("subscription_id", kind="stable"), ASSIGNMENT_COLUMNS)


def protections_frame(pm: PhaseMapping, assignments: pd.DataFrame) -> pd.DataFrame:
    """Price protection directives of the mapped subscriptions (PROTECTION_COLUMNS)."""
    parts = []
    for rule in pm.phase.rules:
        protection = rule.then.price_protection
        if protection is None:
            continue
        chosen = assignments[(assignments["rule_id"] == rule.id).to_numpy(dtype=bool)]
        if chosen.empty:
            continue
        parts.append(
            pd.DataFrame(
                {
                    "subscription_id": chosen["subscription_id"].array,
                    "customer_id": chosen["customer_id"].array,
                    "rule_id": rule.id,
                    "max_increase_percent": format(
                        protection.max_increase_percent.normalize(), "f"
                    ),
                    "months": protection.months,
                    "starts_at": chosen["cutover_at"].array,
                    "ends_at": add_months(chosen["cutover_at"], protection.months).array,
                }
            )
        )
    if not parts:
        return pin(pd.DataFrame(), PROTECTION_COLUMNS)
    frame = pd.concat(parts, ignore_index=True).sort_values("subscription_id", kind="stable")
    return pin(frame, PROTECTION_COLUMNS)
