"""The migration plan of one rollout phase: plain frames with pinned columns.

``translate`` produces a :class:`Plan`; the reconciler prices ``plan.snapshot`` with
``price(plan.snapshot, target_price_catalog(rollout), start, end)`` over the same periods
as the legacy snapshot, and reads the other frames to explain differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Final

import pandas as pd

from shadowbill.snapshot.tables import Snapshot

TS: Final = "datetime64[us, UTC]"

# One row per mapped subscription of the phase's cohort.
ASSIGNMENT_COLUMNS: dict[str, str] = {
    "subscription_id": "string",
    "customer_id": "string",
    "phase": "Int64",
    "rule_id": "string",  # the rule that mapped the subscription's current items
    "history_rule_ids": "string",  # every rule used over the item history, in time order
    "cutover_at": TS,  # when the new platform takes over billing
    "discounts_policy": "string",  # "carry" | "drop" (from the cut-over on)
    "currency": "string",  # the subscription's currency, lower case
    "legacy_plan": "string",  # current legacy price ids, "pro_month_v2 + resolution_bot_month"
    "new_plan": "string",  # new price ids at the current state, "advanced_month + fin_resolution"
    "legacy_items": "string",  # readable: "pro_month_v2 x12 + sms_month (metered)"
    "new_items": "string",  # readable: "advanced_month x12 + fin_resolution (metered)"
    "dropped_items": "string",  # legacy items removed on purpose, with the reason
    "switches": "string",  # scheduled switches: "pro_year -> advanced_year x5 at 2026-07-01"
    "price_protection": "boolean",  # a row in ``protections``
    "discounts_carried": "Int64",  # discount rows active at or after the cut-over, kept
    "discounts_dropped": "Int64",  # discount rows active at or after the cut-over, removed
}

# One row per mapped subscription with a price protection directive. The reconciler
# computes the coupon: over [starts_at, ends_at) the new invoice is capped at
# legacy x (1 + max_increase_percent / 100).
PROTECTION_COLUMNS: dict[str, str] = {
    "subscription_id": "string",
    "customer_id": "string",
    "rule_id": "string",
    "max_increase_percent": "string",  # exact decimal text, e.g. "10" or "7.5"
    "months": "Int64",
    "starts_at": TS,  # the cut-over
    "ends_at": TS,  # starts_at + months (calendar months, day clamped)
}

# One row per subscription of the cohort that could not be mapped.
UNMAPPED_COLUMNS: dict[str, str] = {
    "subscription_id": "string",
    "customer_id": "string",
    "phase": "Int64",
    "reason": "string",  # a stable code (UNMAPPED_REASONS)
    "detail": "string",  # a sentence a migration engineer can act on
}

UNMAPPED_REASONS: dict[str, str] = {
    "no_current_items": "the subscription has no open item row to map",
    "no_rule_matched": "no rule of the phase matches the current items",
    "history_no_rule": "an earlier state of the item history matches no rule",
    "unmapped_item": "a legacy item is consumed by no rule item, drop or item_map entry",
    "unknown_price": "a resulting price is not in the target catalog",
    "missing_currency_option": "a new price has no amount in the subscription's currency",
    "interval_mismatch": "a licensed new price bills on another interval than the subscription",
    "bad_quantity": "a quantity formula divides by zero or gives a negative quantity",
    "switch_before_cutover": "a scheduled switch comes before the subscription's cut-over",
}

# One row per (segment of item history, legacy row -> new price) of the mapped
# subscriptions: how each new item came to be, for cause attribution.
LINEAGE_COLUMNS: dict[str, str] = {
    "subscription_id": "string",
    "rule_id": "string",
    "valid_from": TS,  # the segment of item history the row describes
    "valid_to": TS,  # NaT = open (the current state and on)
    "legacy_item_id": "string",  # empty for an added item
    "legacy_price_id": "string",
    "legacy_quantity": "Int64",
    "new_item_id": "string",  # empty for a dropped item
    "new_price_id": "string",
    "new_quantity": "Int64",  # the new item's total quantity in the segment
    "change": "string",  # mapped | added | dropped | item_map | recreated | switched
    "note": "string",  # the drop reason or the switch date
}


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame with pinned columns."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


@cache
def _dtype_name(dtype: str) -> str:
    return str(pd.Series(dtype=dtype).dtype)


def pin(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The frame with exactly the pinned columns, in order, with their dtypes."""
    out = frame.reindex(columns=list(columns))
    current = {c: str(t) for c, t in out.dtypes.items()}
    differ = {c: t for c, t in columns.items() if current[c] != _dtype_name(t)}
    if differ:
        out = out.astype(differ)
    return out.reset_index(drop=True)


@dataclass(frozen=True)
class Plan:
    """What one phase of a rollout does to its cohort.

    - ``snapshot``: canonical tables of the NEW model for the mapped subscriptions:
      customers and subscriptions unchanged (same ids); subscription_items with the new
      price ids, new item ids (``<subscription_id>:<price_id>``) and a history that starts
      where the legacy history starts, so the new model prices the same past periods as
      the legacy invoices and continues after the cut-over (with any scheduled switch as
      a history change); discounts carried, or cut at the cut-over when dropped (line
      discounts follow their item to its new item); usage and tax_rates unchanged;
      no invoices.
    - ``assignments`` (ASSIGNMENT_COLUMNS): one row per mapped subscription.
    - ``protections`` (PROTECTION_COLUMNS): price protection directives.
    - ``unmapped`` (UNMAPPED_COLUMNS): cohort subscriptions not mapped, with the reason.
    - ``lineage`` (LINEAGE_COLUMNS): legacy row -> new item, per segment of history.
    - ``cohort_size`` = len(assignments) + len(unmapped): nothing is dropped.
    """

    phase: int
    phase_name: str
    as_of: pd.Timestamp
    snapshot: Snapshot
    assignments: pd.DataFrame = field(default_factory=lambda: empty_frame(ASSIGNMENT_COLUMNS))
    protections: pd.DataFrame = field(default_factory=lambda: empty_frame(PROTECTION_COLUMNS))
    unmapped: pd.DataFrame = field(default_factory=lambda: empty_frame(UNMAPPED_COLUMNS))
    lineage: pd.DataFrame = field(default_factory=lambda: empty_frame(LINEAGE_COLUMNS))
    cohort_size: int = 0
    warnings: tuple[str, ...] = ()

    def summary(self) -> dict[str, int]:
        """Counts: cohort, mapped, unmapped, protected."""
        return {
            "cohort": self.cohort_size,
            "mapped": len(self.assignments),
            "unmapped": len(self.unmapped),
            "protected": len(self.protections),
        }
