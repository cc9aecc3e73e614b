"""Comparison D, actual after cut-over: what the target really invoiced, cycle after cycle.

Comparison C proves the target's *preview* before any real invoice exists. After the
cut-over the target issues real invoices; this module holds them against the new model for
the same periods (they must match: a difference is a finding with a cause, as in A-C), and
proves the hand-over itself: for every cut-over subscription the last legacy period and the
first target period meet exactly (no gap, no overlap) and no period is invoiced by both
engines, since the legacy engine keeps running in the shadow for a few cycles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shadowbill.reconcile.compare_a import compare_invoice_sets
from shadowbill.reconcile.findings import (
    FINDING_COLUMNS,
    Cause,
    Comparison,
    Level,
    Severity,
    empty_findings,
    finding_ids,
)

HANDOVER_COLUMNS = ("subscription_id", "customer_id", "currency", "paid_through")


def compare_actual(
    model_invoices: pd.DataFrame,
    model_lines: pd.DataFrame,
    actual_invoices: pd.DataFrame,
    actual_lines: pd.DataFrame,
) -> pd.DataFrame:
    """Findings where the target's issued invoices differ from the new model's, with causes."""
    return compare_invoice_sets(
        model_invoices,
        model_lines,
        actual_invoices,
        actual_lines,
        comparison=Comparison.D.value,
        who="the target's issued invoice",
    )


def _stamp(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype("string")


def _rows(
    frame: pd.DataFrame, cause: Cause, start: pd.Series, end: pd.Series, text: pd.Series
) -> pd.DataFrame:
    """Invoice-level hand-over findings for the rows of ``frame`` (one per row)."""
    if frame.empty:
        return empty_findings()
    start = pd.to_datetime(start, utc=True).astype("datetime64[us, UTC]")
    out = pd.DataFrame(
        {
            "comparison": Comparison.D.value,
            "level": Level.INVOICE.value,
            "customer_id": frame["customer_id"].astype("string").to_numpy(),
            "customer_name": pd.array([pd.NA] * len(frame), dtype="string"),
            "subscription_id": frame["subscription_id"].astype("string").to_numpy(),
            "invoice_key": (
                frame["subscription_id"].astype("string") + "@" + _stamp(start)
            ).to_numpy(),
            "period_start": start.to_numpy(),
            "period_end": pd.to_datetime(end, utc=True).astype("datetime64[us, UTC]").to_numpy(),
            "line_key": "",
            "price_id": pd.NA,
            "currency": frame["currency"].astype("string").to_numpy(),
            "expected": pd.array(np.zeros(len(frame), dtype="int64"), dtype="Int64"),
            "actual": pd.array(np.zeros(len(frame), dtype="int64"), dtype="Int64"),
            "delta": pd.array(np.zeros(len(frame), dtype="int64"), dtype="Int64"),
            "cause": cause.value,
            "severity": Severity.ERROR.value,
            "explanation": text.astype("string").to_numpy(),
        }
    )
    out = out.astype({c: t for c, t in FINDING_COLUMNS.items() if c in out.columns})
    out["finding_id"] = finding_ids(out)
    return out[list(FINDING_COLUMNS)]


def handover_findings(
    handover: pd.DataFrame, legacy_invoices: pd.DataFrame, actual_invoices: pd.DataFrame
) -> pd.DataFrame:
    """Gaps, overlaps and periods billed by both engines, per cut-over subscription.

    ``handover`` has one row per cut-over subscription with ``HANDOVER_COLUMNS``
    (``paid_through``: the instant the legacy engine billed up to, which is where the target's
    first period must start). ``legacy_invoices`` are the legacy engine's invoices as extracted
    after the cut-over; ``actual_invoices`` are the target's issued invoices (canonical frames,
    both keyed by the legacy subscription id). Void invoices bill nothing and are ignored.
    """
    if handover.empty:
        return empty_findings()
    hand = handover[list(HANDOVER_COLUMNS)].copy()
    hand["paid_through"] = pd.to_datetime(hand["paid_through"], utc=True)
    subs = set(hand["subscription_id"].astype(str))

    def billed(invoices: pd.DataFrame) -> pd.DataFrame:
        keep = invoices["subscription_id"].astype(str).isin(subs) & (
            invoices["status"].astype(str) != "void"
        )
        frame = invoices.loc[keep, ["subscription_id", "period_start", "period_end"]].copy()
        frame["subscription_id"] = frame["subscription_id"].astype(str)
        frame["period_start"] = pd.to_datetime(frame["period_start"], utc=True)
        frame["period_end"] = pd.to_datetime(frame["period_end"], utc=True)
        return frame

    legacy, target = billed(legacy_invoices), billed(actual_invoices)
    hand["subscription_id"] = hand["subscription_id"].astype(str)
    found: list[pd.DataFrame] = []

    # the first target period must start exactly where the legacy engine stopped
    first = target.groupby("subscription_id", as_index=False)["period_start"].min()
    meet = hand.merge(first, on="subscription_id", how="inner")
    gap = meet[meet["period_start"] > meet["paid_through"]]
    found.append(
        _rows(
            gap,
            Cause.HANDOVER_GAP,
            gap["paid_through"],
            gap["period_start"],
            "Nobody billed "
            + _stamp(gap["paid_through"])
            + " to "
            + _stamp(gap["period_start"])
            + ": the legacy engine billed up to the first instant and the target's first period starts at the second.",
        )
    )
    early = meet[meet["period_start"] < meet["paid_through"]]
    found.append(
        _rows(
            early,
            Cause.HANDOVER_OVERLAP,
            early["period_start"],
            early["paid_through"],
            "Billed twice from "
            + _stamp(early["period_start"])
            + " to "
            + _stamp(early["paid_through"])
            + ": the target's first period starts before the legacy engine's paid-through instant.",
        )
    )

    # a legacy invoice for time after the hand-over: billed by both engines, or by the wrong one
    late = legacy.merge(hand, on="subscription_id", how="inner")
    late = late[late["period_end"] > late["paid_through"]]
    if not late.empty:
        both = late.merge(
            target.rename(columns={"period_start": "t_start", "period_end": "t_end"}),
            on="subscription_id",
            how="left",
        )
        both["overlaps"] = (both["t_start"] < both["period_end"]) & (
            both["t_end"] > both["period_start"]
        )
        twice = both.groupby(["subscription_id", "period_start"], as_index=False)["overlaps"].any()
        late = late.merge(twice, on=["subscription_id", "period_start"], how="left")
        text = pd.Series(
            np.where(
                late["overlaps"].fillna(False).to_numpy(dtype=bool),
                "The legacy engine and the target both invoiced this period",
                "The legacy engine invoiced this period after the hand-over",
            ),
            index=late.index,
            dtype="string",
        )
        found.append(
            _rows(
                late,
                Cause.BILLED_TWICE,
                late["period_start"],
                late["period_end"],
                text + " (legacy paid-through " + _stamp(late["paid_through"]) + ").",
            )
        )
    frames = [f for f in found if not f.empty]
    if not frames:
        return empty_findings()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["subscription_id", "period_start", "cause"], kind="stable").reset_index(
        drop=True
    )
