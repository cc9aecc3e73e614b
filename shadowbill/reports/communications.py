"""customers_changing.csv: every customer whose monthly bill changes, for the teams who
write to them before the change.

The monthly amount is the run-rate at the cut-over (``shadowbill.reconcile.revenue``):
revenue net of tax recognized in the first full month on the new platform, legacy vs
new. A customer is listed when the change is at least ``threshold_bp`` hundredths of a
percent of the legacy amount (or when there was no legacy amount and there is a new one).
Text cells are neutralised for spreadsheets (``shadowbill.csv_cells``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from shadowbill.csv_cells import neutralise_table
from shadowbill.errors import ReportError
from shadowbill.money import Rounding, format_minor, mul_div_round
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.aggregates import cause_label, format_basis_points
from shadowbill.reports.finance import plan_names

DEFAULT_THRESHOLD_BP = 100  # 1% of the legacy monthly amount
OWNER_COLUMNS = ("account_owner", "owner", "account_manager")

CHANGING_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "name": "string",
    "segment": "string",
    "account_owner": "string",  # empty where the data has no owner
    "currency": "string",
    "legacy_monthly": "string",  # major units with the currency, net of tax
    "new_monthly": "string",
    "change": "string",
    "change_percent": "string",
    "direction": "string",  # "increase" | "decrease"
    "causes": "string",  # in words, largest first
    "legacy_plan": "string",  # catalog names
    "new_plan": "string",
    "legacy_monthly_minor": "Int64",
    "new_monthly_minor": "Int64",
    "change_minor": "Int64",
}


def _causes_in_words(waterfall: pd.DataFrame) -> pd.Series:
    """Per customer and currency: the causes of the change in words, largest first."""
    steps = waterfall[~waterfall["cause"].isin(["legacy_total", "new_total", "tax"])]
    steps = steps[steps["amount"].fillna(0) != 0]
    steps = steps.assign(size=steps["amount"].abs()).sort_values(
        ["customer_id", "currency", "size"], ascending=[True, True, False], kind="stable"
    )
    words = steps["cause"].astype(str).map(cause_label) + np.where(
        steps["amount"] > 0, " (raises)", " (lowers)"
    )
    key = [steps["customer_id"].astype(str), steps["currency"].astype(str).str.upper()]
    return words.groupby(key).agg("; ".join)


def customers_changing(
    result: ReconciliationResult, threshold_bp: int = DEFAULT_THRESHOLD_BP
) -> pd.DataFrame:
    """Every customer whose monthly amount net of tax moves by at least ``threshold_bp``."""
    rr = result.run_rate
    legacy = rr["legacy_mrr"].astype("int64").to_numpy()
    new = rr["new_mrr"].astype("int64").to_numpy()
    delta = new - legacy
    bp = np.zeros(len(rr), dtype=np.int64)
    positive = legacy > 0
    if positive.any():
        bp[positive] = mul_div_round(delta[positive], 10_000, legacy[positive], Rounding.HALF_UP)
    listed = np.where(positive, np.abs(bp) >= threshold_bp, delta != 0) & (delta != 0)
    rows = rr[listed].reset_index(drop=True)
    bp_rows, delta_rows = bp[listed], delta[listed]
    people = result.customers.drop_duplicates("customer_id").set_index("customer_id")
    ids = rows["customer_id"].astype("string")
    owner_col = next((c for c in OWNER_COLUMNS if c in people.columns), None)
    currency = rows["currency"].astype("string").str.upper()
    causes = _causes_in_words(result.waterfall)
    cause_keys = pd.MultiIndex.from_arrays([ids.astype(str), currency.astype(str)])
    names = result.price_names

    def fmt(values: np.ndarray) -> list[str]:
        return [format_minor(int(v), c) for v, c in zip(values, currency, strict=True)]

    out = pd.DataFrame(
        {
            "customer_id": ids,
            "name": people["name"].reindex(ids).to_numpy(),
            "segment": people["segment"].reindex(ids).to_numpy(),
            "account_owner": (people[owner_col].reindex(ids).to_numpy() if owner_col else pd.NA),
            "currency": currency,
            "legacy_monthly": fmt(rows["legacy_mrr"].to_numpy()),
            "new_monthly": fmt(rows["new_mrr"].to_numpy()),
            "change": [
                ("+" if d > 0 else "") + t for d, t in zip(delta_rows, fmt(delta_rows), strict=True)
            ],
            "change_percent": [
                format_basis_points(int(b)) if lg > 0 else "new"
                for b, lg in zip(bp_rows, rows["legacy_mrr"], strict=True)
            ],
            "direction": np.where(delta_rows > 0, "increase", "decrease"),
            "causes": causes.reindex(cause_keys).fillna("").to_numpy(),
            "legacy_plan": [
                plan_names(str(p), names)
                for p in people["legacy_plan"].reindex(ids).astype("string").fillna("")
            ],
            "new_plan": [
                plan_names(str(p), names)
                for p in people["new_plan"].reindex(ids).astype("string").fillna("")
            ],
            "legacy_monthly_minor": rows["legacy_mrr"].to_numpy(),
            "new_monthly_minor": rows["new_mrr"].to_numpy(),
            "change_minor": delta_rows,
        }
    )
    out = out.astype(CHANGING_COLUMNS)
    order = np.lexsort((out["customer_id"].to_numpy(dtype=str), -np.abs(bp_rows)))
    return out.iloc[order].reset_index(drop=True)


def write_customers_changing(frame: pd.DataFrame, out_path: Path) -> Path:
    """Write customers_changing.csv (text cells neutralised for spreadsheets)."""
    table = neutralise_table(pa.Table.from_pandas(frame, preserve_index=False))
    try:
        pa_csv.write_csv(table, out_path)
    except OSError as exc:
        raise ReportError(f"cannot write {out_path}: {exc}") from exc
    return out_path
