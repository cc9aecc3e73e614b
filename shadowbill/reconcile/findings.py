"""Findings: every difference a comparison finds, as one frame with pinned columns.

Comparison A: actual legacy invoices (actual) vs the legacy catalog recomputed (expected).
Comparison B: legacy recomputed (expected) vs the new model (actual).
Comparison C: the new model (expected) vs the target platform's previews (actual).
Comparison D: the new model (expected) vs the target's issued invoices after the cut-over (actual).
``delta = actual - expected`` in minor units of ``currency``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.pricing.explain_text import join


class Comparison(StrEnum):
    """Which two sides a finding compares."""

    A = "A"  # legacy drift
    B = "B"  # migration impact
    C = "C"  # cut-over verification
    D = "D"  # actual after cut-over: the target's issued invoices


class Cause(StrEnum):
    """Why two amounts differ; every delta is split into these."""

    PRICE_CHANGE = "price_change"
    QUANTITY_TRANSFORM = "quantity_transform"
    DISCOUNT_CARRIED = "discount_carried"
    DISCOUNT_LOST = "discount_lost"
    PRICE_PROTECTION = "price_protection"
    PRORATION_METHOD = "proration_method"
    ROUNDING = "rounding"
    NEW_USAGE_CHARGE = "new_usage_charge"
    REMOVED_ITEM = "removed_item"
    TAX = "tax"
    TAX_EXTERNAL = "tax_external"  # tax from an outside engine (tax_mode external): informational
    MISSING_LINE = "missing_line"
    EXTRA_LINE = "extra_line"
    UNMAPPED = "unmapped"
    UNEXPLAINED = "unexplained"
    # the hand-over between the two engines (comparison D)
    HANDOVER_GAP = "handover_gap"
    HANDOVER_OVERLAP = "handover_overlap"
    BILLED_TWICE = "billed_twice"


# The order comparison B attributes a difference in, one cause at a time: the steps of the
# waterfall (unexplained, what no step explains, last).
WATERFALL_CAUSES: Final[tuple[str, ...]] = tuple(
    cause.value
    for cause in (
        Cause.PRORATION_METHOD,
        Cause.ROUNDING,
        Cause.PRICE_CHANGE,
        Cause.QUANTITY_TRANSFORM,
        Cause.REMOVED_ITEM,
        Cause.NEW_USAGE_CHARGE,
        Cause.DISCOUNT_CARRIED,
        Cause.DISCOUNT_LOST,
        Cause.PRICE_PROTECTION,
        Cause.TAX,
        Cause.UNEXPLAINED,
    )
)


class Severity(StrEnum):
    """How much a finding matters to the gate and to a reviewer."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Level(StrEnum):
    """The grain a finding is reported at."""

    LINE = "line"
    INVOICE = "invoice"
    CUSTOMER = "customer"


FINDING_COLUMNS: dict[str, str] = {
    "finding_id": "string",  # stable across runs: hash of comparison, level, keys and cause
    "comparison": "string",  # Comparison
    "level": "string",  # Level
    "customer_id": "string",  # the legacy id
    "customer_name": "string",  # the customer's name in the snapshot, beside the legacy id
    "subscription_id": "string",
    "invoice_key": "string",  # "<subscription_id>@<period_start ISO>"; empty at customer level
    "period_start": "datetime64[us, UTC]",
    "period_end": "datetime64[us, UTC]",
    "line_key": "string",  # price_id/kind/period of the line; empty above line level
    "price_id": "string",
    "currency": "string",
    "expected": "Int64",  # minor units
    "actual": "Int64",  # minor units
    "delta": "Int64",  # actual - expected
    "cause": "string",  # Cause
    "severity": "string",  # Severity
    "explanation": "string",  # a sentence a person can read
}


def empty_findings() -> pd.DataFrame:
    """An empty findings frame with the pinned columns."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in FINDING_COLUMNS.items()})


def finding_ids(frame: pd.DataFrame) -> pd.Series:
    """Stable ids: the same finding gets the same id from run to run."""
    parts = frame[["comparison", "level", "subscription_id", "invoice_key", "line_key", "cause"]]
    hashed = pd.util.hash_pandas_object(parts.astype("string").fillna(""), index=False)
    # "f" + the hash as 20 decimal digits, formatted by Arrow rather than per row in Python
    digits = pc.utf8_lpad(pc.cast(pa.array(hashed.to_numpy(np.uint64)), pa.large_string()), 20, "0")
    ids = join("f", digits)
    return pd.Series(pd.array(ids, dtype="string"), index=frame.index)


def with_customer_names(findings: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """The findings with ``customer_name`` from the snapshot's customers (by legacy id)."""
    names = customers.drop_duplicates("customer_id").set_index("customer_id")["name"]
    named = findings["customer_id"].map(names.astype("string")).astype("string")
    return findings.assign(customer_name=named)
