"""The reconciler's output frames as declared contracts: findings, the customer view and
the waterfall (pandera ``DataFrameModel``s).

The column names and dtypes are the pinned maps of :mod:`.findings` and :mod:`.result`
(a test holds them equal); the models add what a dtype cannot say: the enums, that a
customer's delta is the difference of its totals, that each waterfall adds up. Checked at the
stage's exit by the tests (pandera is a test dependency, imported only here).
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from shadowbill.reconcile.findings import Cause, Comparison, Level, Severity

# pandas' nullable dtypes, as the pinned column maps name them
STRING = pd.StringDtype
INT = pd.Int64Dtype
UTC_TIME = Annotated[pd.DatetimeTZDtype, "us", "UTC"]


def _difference(frame: pd.DataFrame, delta: str, new: str, old: str) -> pd.Series:
    """``delta == new - old`` wherever all three are known."""
    known = frame[[delta, new, old]].notna().all(axis=1)
    return ~known | (frame[delta] == frame[new] - frame[old]).fillna(False)


class Findings(pa.DataFrameModel):
    """One row per finding: comparison A, B, C or D, at line, invoice or customer level."""

    finding_id: Series[STRING] = pa.Field(str_matches=r"^f\d{20}$", unique=True)
    comparison: Series[STRING] = pa.Field(isin=[c.value for c in Comparison])
    level: Series[STRING] = pa.Field(isin=[v.value for v in Level])
    customer_id: Series[STRING] = pa.Field(nullable=True)
    customer_name: Series[STRING] = pa.Field(nullable=True)
    subscription_id: Series[STRING] = pa.Field(nullable=True)
    invoice_key: Series[STRING] = pa.Field(nullable=True)
    period_start: Series[UTC_TIME] = pa.Field(nullable=True)
    period_end: Series[UTC_TIME] = pa.Field(nullable=True)
    line_key: Series[STRING] = pa.Field(nullable=True)
    price_id: Series[STRING] = pa.Field(nullable=True)
    currency: Series[STRING] = pa.Field(nullable=True)
    expected: Series[INT] = pa.Field(nullable=True)  # minor units
    actual: Series[INT] = pa.Field(nullable=True)  # minor units
    delta: Series[INT] = pa.Field(nullable=True)  # minor units (a cause's share in B)
    cause: Series[STRING] = pa.Field(isin=[c.value for c in Cause])
    severity: Series[STRING] = pa.Field(isin=[s.value for s in Severity])
    explanation: Series[STRING] = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True
        coerce = False


class CustomerView(pa.DataFrameModel):
    """One row per customer (and currency) of the phase's cohort."""

    customer_id: Series[STRING]
    name: Series[STRING] = pa.Field(nullable=True)
    segment: Series[STRING] = pa.Field(nullable=True)
    country: Series[STRING] = pa.Field(nullable=True)
    currency: Series[STRING] = pa.Field(nullable=True)
    legacy_plan: Series[STRING] = pa.Field(nullable=True)
    new_plan: Series[STRING] = pa.Field(nullable=True)
    rule_id: Series[STRING] = pa.Field(nullable=True)
    status: Series[STRING] = pa.Field(isin=["mapped", "unmapped"])
    invoices: Series[INT] = pa.Field(ge=0, nullable=True)
    legacy_total: Series[INT] = pa.Field(nullable=True)
    new_total: Series[INT] = pa.Field(nullable=True)
    delta: Series[INT] = pa.Field(nullable=True)
    delta_pct: Series[pd.Float64Dtype] = pa.Field(nullable=True)
    unexplained: Series[INT] = pa.Field(nullable=True)
    drift: Series[INT] = pa.Field(nullable=True)

    @pa.dataframe_check
    @classmethod
    def delta_is_new_minus_legacy(cls, frame: pd.DataFrame) -> pd.Series:
        """A customer's delta is the new total minus the legacy total."""
        return _difference(frame, "delta", "new_total", "legacy_total")

    class Config:
        strict = True
        ordered = True
        unique = ["customer_id", "currency"]  # noqa: RUF012


class Waterfall(pa.DataFrameModel):
    """The steps from legacy total to new total, per customer and currency."""

    customer_id: Series[STRING]
    currency: Series[STRING]
    step: Series[INT] = pa.Field(ge=0)
    cause: Series[STRING] = pa.Field(isin=["legacy_total", *(c.value for c in Cause), "new_total"])
    amount: Series[INT]
    explanation: Series[STRING] = pa.Field(nullable=True)

    @pa.dataframe_check
    @classmethod
    def steps_add_up(cls, frame: pd.DataFrame) -> pd.Series:
        """Legacy total plus every cause step is the new total, to the cent."""
        sign = frame["cause"].map({"new_total": -1}).fillna(1).astype("int64")
        signed = frame["amount"].astype("int64") * sign
        sums = signed.groupby([frame["customer_id"], frame["currency"]]).transform("sum")
        return sums == 0

    class Config:
        strict = True
        ordered = True
