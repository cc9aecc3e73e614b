"""The translation's output frames as declared contracts: a plan's assignments and unmapped
subscriptions (pandera ``DataFrameModel``s over the pinned maps of :mod:`.plan`, which a
test holds equal). Checked at the stage's exit by the tests (pandera is a test dependency,
imported only here)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from shadowbill.translate.plan import UNMAPPED_REASONS

STRING = pd.StringDtype
INT = pd.Int64Dtype
UTC_TIME = Annotated[pd.DatetimeTZDtype, "us", "UTC"]


class PlanAssignments(pa.DataFrameModel):
    """One row per mapped subscription of the phase's cohort (each exactly once)."""

    subscription_id: Series[STRING] = pa.Field(unique=True)
    customer_id: Series[STRING]
    phase: Series[INT] = pa.Field(ge=1)
    rule_id: Series[STRING]
    history_rule_ids: Series[STRING] = pa.Field(nullable=True)
    cutover_at: Series[UTC_TIME]
    discounts_policy: Series[STRING] = pa.Field(isin=["carry", "drop"])
    currency: Series[STRING] = pa.Field(str_matches=r"^[a-z]{3}$")
    legacy_plan: Series[STRING] = pa.Field(nullable=True)
    new_plan: Series[STRING] = pa.Field(nullable=True)
    legacy_items: Series[STRING] = pa.Field(nullable=True)
    new_items: Series[STRING] = pa.Field(nullable=True)
    dropped_items: Series[STRING] = pa.Field(nullable=True)
    switches: Series[STRING] = pa.Field(nullable=True)
    price_protection: Series[pd.BooleanDtype]
    discounts_carried: Series[INT] = pa.Field(ge=0)
    discounts_dropped: Series[INT] = pa.Field(ge=0)

    class Config:
        strict = True
        ordered = True


class PlanUnmapped(pa.DataFrameModel):
    """One row per cohort subscription that could not be mapped, with a stable reason code."""

    subscription_id: Series[STRING] = pa.Field(unique=True)
    customer_id: Series[STRING]
    phase: Series[INT] = pa.Field(ge=1)
    reason: Series[STRING] = pa.Field(isin=list(UNMAPPED_REASONS))
    detail: Series[STRING]

    class Config:
        strict = True
        ordered = True
