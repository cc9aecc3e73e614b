"""Aggregates of a reconciliation that several reports show, computed once on whole frames.

Every money aggregate is grouped by currency: amounts are never added across currencies.
Counts (customers, invoices, findings) may be added across currencies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.errors import ReportError
from shadowbill.money import Rounding, mul_div_round
from shadowbill.reconcile.findings import FINDING_COLUMNS, Cause
from shadowbill.reconcile.result import (
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    MONTHLY_COLUMNS,
    PLAN_MOVE_COLUMNS,
    WATERFALL_COLUMNS,
    ReconciliationResult,
)

# The frames of a result and the columns a report needs from each.
_CONTRACT: dict[str, dict[str, str]] = {
    "findings": FINDING_COLUMNS,
    "customers": CUSTOMER_COLUMNS,
    "waterfall": WATERFALL_COLUMNS,
    "monthly": MONTHLY_COLUMNS,
    "plan_moves": PLAN_MOVE_COLUMNS,
    "lines": LINE_COLUMNS,
}

# Per-customer change buckets in percent of the legacy total: (label, lower bound).
# A customer falls in the last bucket whose lower bound is <= its change.
CHANGE_EDGES_PERCENT: tuple[int, ...] = (-20, -10, -5, -1, 0, 1, 5, 10, 20)
CHANGE_BUCKETS: tuple[str, ...] = (
    "below -20%",
    "-20% to -10%",
    "-10% to -5%",
    "-5% to -1%",
    "-1% to 0%",
    "unchanged",
    "0% to 1%",
    "1% to 5%",
    "5% to 10%",
    "10% to 20%",
    "20% and above",
    "no legacy amount",
)

CAUSE_LABELS: dict[str, str] = {
    "legacy_total": "Legacy total",
    "new_total": "New total",
    Cause.PRICE_CHANGE: "Price change",
    Cause.QUANTITY_TRANSFORM: "Quantity transform",
    Cause.DISCOUNT_CARRIED: "Discount carried",
    Cause.DISCOUNT_LOST: "Discount lost",
    Cause.PRICE_PROTECTION: "Price protection",
    Cause.PRORATION_METHOD: "Proration method",
    Cause.ROUNDING: "Rounding",
    Cause.NEW_USAGE_CHARGE: "New usage charge",
    Cause.REMOVED_ITEM: "Removed item",
    Cause.TAX: "Tax",
    Cause.MISSING_LINE: "Missing line",
    Cause.EXTRA_LINE: "Extra line",
    Cause.UNMAPPED: "Unmapped",
    Cause.UNEXPLAINED: "Unexplained",
}


def cause_label(cause: str) -> str:
    """A cause code as a reader sees it ("price_change" -> "Price change")."""
    return CAUSE_LABELS.get(cause, cause.replace("_", " ").capitalize())


def _arrow_strings(values: Iterable[object] | pd.Series | pd.Index) -> pa.Array:
    if not isinstance(values, pd.Series | pd.Index):
        values = pd.Series(list(values), dtype=object)
    return pa.array(
        pd.Series(values).astype("string").astype(object), pa.string(), from_pandas=True
    )


def is_in(series: pd.Series, values: Iterable[object] | pd.Series | pd.Index) -> np.ndarray:
    """Which values of a string column are among ``values``, by Arrow's hash lookup.

    pandas' ``isin`` on Arrow-backed strings converts its argument one scalar at a time,
    which takes seconds for 100,000 ids.
    """
    found = pc.is_in(_arrow_strings(series), value_set=_arrow_strings(values))
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


def check_result(result: ReconciliationResult) -> None:
    """Raise ReportError naming every frame of the result that lacks pinned columns."""
    problems = []
    for name, columns in _CONTRACT.items():
        frame = getattr(result, name)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing)}")
    if problems:
        raise ReportError(
            f"reconciliation result of phase {result.phase} cannot be reported: "
            + "; ".join(problems)
        )


def as_int(value: object) -> int:
    """A pandas scalar (Int64, numpy or NA) as a Python int; NA counts as zero."""
    return 0 if value is pd.NA or value is None else int(value)  # type: ignore[call-overload]


def _sum_by(frame: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    """Int64 sums of ``cols`` per ``keys``; NA amounts count as nothing."""
    out = frame[keys + cols].astype(dict.fromkeys(cols, "Int64")).groupby(keys, dropna=False)
    return out.sum(min_count=0).reset_index()


def change_direction(customers: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns up / down / unchanged per customer (mapped customers only count)."""
    mapped = (customers["status"] == "mapped").fillna(False).to_numpy(dtype=bool)
    delta = customers["delta"].astype("Int64")
    known = delta.notna().to_numpy(dtype=bool) & mapped
    d = delta.fillna(0).to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {"up": known & (d > 0), "down": known & (d < 0), "unchanged": known & (d == 0)},
        index=customers.index,
    )


def change_basis_points(customers: pd.DataFrame) -> pd.Series:
    """Per-customer change in hundredths of a percent of the legacy total, exact (half up).

    Integer arithmetic on minor units, so it does not depend on float ratios; NA where
    the legacy total is zero or negative, or the customer is unmapped.
    """
    legacy = customers["legacy_total"].astype("Int64")
    delta = customers["delta"].astype("Int64")
    ok = (legacy > 0).fillna(False) & delta.notna()
    out = pd.Series(pd.NA, index=customers.index, dtype="Int64")
    if ok.any():
        num = delta[ok].to_numpy(dtype=np.int64)
        den = legacy[ok].to_numpy(dtype=np.int64)
        out[ok] = mul_div_round(num, 10_000, den, Rounding.HALF_UP)
    return out


def ratio_basis_points(delta: int, legacy: int) -> int | None:
    """``delta / legacy`` in hundredths of a percent, exact (half up); None when legacy <= 0."""
    if legacy <= 0:
        return None
    return int(mul_div_round([delta], 10_000, [legacy], Rounding.HALF_UP)[0])


def format_basis_points(bp: int | None) -> str:
    """Hundredths of a percent as text ("+1.25%", "-0.50%", "0.00%"); None as a dash."""
    if bp is None:
        return "—"
    sign = "+" if bp > 0 else "-" if bp < 0 else ""
    whole, hundredths = divmod(abs(bp), 100)
    return f"{sign}{whole:,}.{hundredths:02d}%"


def change_histogram(customers: pd.DataFrame) -> pd.DataFrame:
    """Mapped customers per bucket of percentage change (exact integer comparison)."""
    mapped = customers[(customers["status"] == "mapped").fillna(False)]
    legacy = mapped["legacy_total"].astype("Int64")
    delta = mapped["delta"].astype("Int64")
    has_legacy = ((legacy > 0).fillna(False) & delta.notna()).to_numpy(dtype=bool)
    lg = legacy.fillna(0).to_numpy(dtype=np.int64)
    dl = delta.fillna(0).to_numpy(dtype=np.int64)
    edges = np.array(CHANGE_EDGES_PERCENT, dtype=np.int64)
    if len(lg) and max(np.abs(lg).max(), np.abs(dl).max()) >= 2**55:
        # Python integers where 100 * amount could leave the int64 range.
        lg, dl, edges = lg.astype(object), dl.astype(object), edges.astype(object)
    # bucket index = number of edges e with 100 * delta >= e * legacy (strictly above 0 for 0).
    scaled = (dl * 100)[:, None]
    bound = lg[:, None] * edges[None, :]
    above = np.where(edges[None, :] == 0, scaled > bound, scaled >= bound)
    idx = above.sum(axis=1).astype(np.int64)
    # Shift the buckets from the zero edge up by one to make room for "unchanged".
    zero_at = CHANGE_EDGES_PERCENT.index(0)
    idx = np.where(idx > zero_at, idx + 1, idx)
    idx = np.where(dl == 0, zero_at + 1, idx)
    idx = np.where(has_legacy, idx, len(CHANGE_BUCKETS) - 1)
    counts = np.bincount(idx.astype(np.int64), minlength=len(CHANGE_BUCKETS))
    return pd.DataFrame({"bucket": list(CHANGE_BUCKETS), "customers": counts.astype(np.int64)})


def _compared(customers: pd.DataFrame) -> pd.DataFrame:
    """Money columns split into the compared (mapped) customers and the unmapped ones.

    Legacy, new and delta are summed over the same customers, so that legacy + delta = new
    in every row; the legacy revenue of customers with no new price is ``unmapped_legacy``.
    """
    direction = change_direction(customers)
    compared = (customers["status"] == "mapped").fillna(False) & customers["new_total"].notna()
    legacy = customers["legacy_total"].astype("Int64")
    zero = pd.Series(0, index=customers.index, dtype="Int64")
    return customers.assign(
        customers=1,
        mapped=compared.astype("int64"),
        unmapped=(~compared).astype("int64"),
        up=direction["up"].astype("int64"),
        down=direction["down"].astype("int64"),
        unchanged=direction["unchanged"].astype("int64"),
        legacy_total=legacy.where(compared, zero),
        new_total=customers["new_total"].astype("Int64").where(compared, zero),
        delta=customers["delta"].astype("Int64").where(compared, zero),
        unmapped_legacy=legacy.where(~compared, zero),
    )


_TOTAL_COLUMNS = [
    "customers",
    "mapped",
    "unmapped",
    "up",
    "down",
    "unchanged",
    "invoices",
    "legacy_total",
    "new_total",
    "delta",
    "unmapped_legacy",
    "unexplained",
    "drift",
]


def currency_totals(result: ReconciliationResult) -> pd.DataFrame:
    """One row per currency: customers, invoices, legacy, new, delta, actual, drift, movers."""
    totals = _sum_by(_compared(result.customers), ["currency"], _TOTAL_COLUMNS)
    actual = _sum_by(result.monthly, ["currency"], ["actual_legacy"])
    out = totals.merge(actual, on="currency", how="outer")
    cols = [*_TOTAL_COLUMNS, "actual_legacy"]
    out = out.astype(dict.fromkeys(cols, "Int64")).fillna(dict.fromkeys(cols, 0))
    return out.sort_values("currency", kind="stable").reset_index(drop=True)


def yearly_revenue(monthly: pd.DataFrame) -> pd.DataFrame:
    """Actual legacy, legacy recomputed and new revenue per calendar year and currency."""
    frame = monthly.assign(year=monthly["month"].astype("string").str.slice(0, 4))
    out = _sum_by(frame, ["year", "currency"], ["actual_legacy", "legacy_total", "new_total"])
    out["delta"] = out["new_total"] - out["legacy_total"]
    return out.sort_values(["currency", "year"], kind="stable").reset_index(drop=True)


def monthly_revenue(monthly: pd.DataFrame) -> pd.DataFrame:
    """Monthly revenue per currency, sorted, with the new-minus-legacy change."""
    out = _sum_by(monthly, ["month", "currency"], ["actual_legacy", "legacy_total", "new_total"])
    out["delta"] = out["new_total"] - out["legacy_total"]
    return out.sort_values(["currency", "month"], kind="stable").reset_index(drop=True)


def cause_totals(waterfall: pd.DataFrame) -> pd.DataFrame:
    """Per cause and currency, from the waterfall: customers affected, increases, decreases, net."""
    steps = waterfall[~waterfall["cause"].isin(["legacy_total", "new_total"])]
    amount = steps["amount"].astype("Int64").fillna(0)
    frame = pd.DataFrame(
        {
            "cause": steps["cause"].astype("string"),
            "currency": steps["currency"].astype("string"),
            "customers": (amount != 0).astype("int64"),
            "increase": amount.where(amount > 0, 0),
            "decrease": amount.where(amount < 0, 0),
            "net": amount,
        }
    )
    out = _sum_by(frame, ["cause", "currency"], ["customers", "increase", "decrease", "net"])
    out = out.assign(size=out["net"].abs()).sort_values(
        ["currency", "size", "cause"], ascending=[True, False, True], kind="stable"
    )
    return out.drop(columns="size").reset_index(drop=True)


def segment_totals(customers: pd.DataFrame) -> pd.DataFrame:
    """Per segment and currency: customers, movers, legacy, new, delta (compared customers)."""
    out = _sum_by(_compared(customers), ["segment", "currency"], _TOTAL_COLUMNS)
    return out.sort_values(["currency", "segment"], kind="stable").reset_index(drop=True)


def plan_moves(result: ReconciliationResult) -> pd.DataFrame:
    """Legacy plan -> new plan movements, largest groups first, per currency."""
    moves = result.plan_moves.copy()
    moves["new_plan"] = moves["new_plan"].astype("string").fillna("")
    return moves.sort_values(
        ["currency", "customers", "legacy_plan", "new_plan"],
        ascending=[True, False, True, True],
        kind="stable",
    ).reset_index(drop=True)


def top_movers(
    customers: pd.DataFrame, per_currency: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The largest increases and decreases per currency, by amount in that currency."""
    mapped = customers[(customers["status"] == "mapped").fillna(False)]
    delta = mapped["delta"].astype("Int64")
    ups = mapped[(delta > 0).fillna(False)]
    downs = mapped[(delta < 0).fillna(False)]
    ups = ups.sort_values(["currency", "delta", "customer_id"], ascending=[True, False, True])
    downs = downs.sort_values(["currency", "delta", "customer_id"], ascending=[True, True, True])
    return (
        ups.groupby("currency", sort=False).head(per_currency).reset_index(drop=True),
        downs.groupby("currency", sort=False).head(per_currency).reset_index(drop=True),
    )


def finding_stats(result: ReconciliationResult) -> dict[str, Any]:
    """Counts of all findings (total, per comparison, cause, severity, level, matrix)."""
    if result.finding_stats is not None:
        return result.finding_stats
    f = result.findings
    return {
        "total": len(f),
        "by_comparison": findings_counts(f, "comparison"),
        "by_cause": findings_counts(f, "cause"),
        "by_severity": findings_counts(f, "severity"),
        "by_level": findings_counts(f, "level"),
        "by_comparison_and_cause": findings_matrix(f),
    }


def findings_counts(findings: pd.DataFrame, key: str) -> dict[str, int]:
    """Number of findings per value of ``key`` (comparison, cause, severity or level)."""
    counts = findings[key].astype("string").fillna("").value_counts(sort=False)
    return {str(k): int(v) for k, v in sorted(counts.items())}


def findings_matrix(findings: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Number of findings per comparison, then per cause."""
    pairs = findings[["comparison", "cause"]].astype("string").fillna("")
    counts = pairs.value_counts(sort=False)
    out: dict[str, dict[str, int]] = {}
    for key, n in sorted(counts.items()):
        comparison, cause = (str(k) for k in key)  # type: ignore[attr-defined]
        out.setdefault(comparison, {})[cause] = int(n)
    return out


def exception_frames(result: ReconciliationResult) -> dict[str, pd.DataFrame]:
    """The four exception lists, derived from the findings where the result has none."""
    f = result.findings
    derived = {
        "unmapped": pd.DataFrame(
            {
                "subscription_id": pd.Series(dtype="string"),
                "customer_id": pd.Series(dtype="string"),
                "reason": pd.Series(dtype="string"),
            }
        ),
        "quarantined": pd.DataFrame(
            {c: pd.Series(dtype="string") for c in ("table", "source_ref", "reason", "detail")}
        ),
        "unexplained": f[f["cause"] == Cause.UNEXPLAINED],
        "drift": f[f["comparison"] == "A"],
    }
    return {k: result.exceptions.get(k, v) for k, v in derived.items()}


def unexplained_amounts(customers: pd.DataFrame) -> dict[str, int]:
    """The part of the change no cause explains, per currency (customers' unexplained)."""
    sums = _sum_by(customers, ["currency"], ["unexplained"])
    return {str(r.currency): as_int(r.unexplained) for r in sums.itertuples(index=False)}
