"""The pricing engine's output frames as declared contracts: priced invoices and their lines
(pandera ``DataFrameModel``s over the canonical invoice tables plus the engine's keys).
Money is integer minor units; every invoice's total is subtotal - discount + tax. Checked
at the stage's exit by the tests (pandera is a test dependency, imported only here)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from shadowbill.snapshot.tables import LINE_KINDS

STRING = pd.StringDtype
INT = pd.Int64Dtype
UTC_TIME = Annotated[pd.DatetimeTZDtype, "us", "UTC"]


class PricedInvoices(pa.DataFrameModel):
    """One row per priced billing period (the invoices table's columns plus invoice_key)."""

    invoice_id: Series[STRING] = pa.Field(unique=True)
    subscription_id: Series[STRING]
    customer_id: Series[STRING]
    period_start: Series[UTC_TIME]
    period_end: Series[UTC_TIME]
    currency: Series[STRING]
    subtotal: Series[INT]
    discount: Series[INT] = pa.Field(ge=0)
    tax: Series[INT]
    total: Series[INT]
    status: Series[STRING]
    issued_at: Series[UTC_TIME]
    invoice_key: Series[STRING] = pa.Field(
        unique=True, str_matches=r"^.+@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
    )

    @pa.dataframe_check
    @classmethod
    def total_is_subtotal_less_discount_plus_tax(cls, frame: pd.DataFrame) -> pd.Series:
        """Every invoice adds up: total == subtotal - discount + tax."""
        return frame["total"] == frame["subtotal"] - frame["discount"] + frame["tax"]

    @pa.dataframe_check
    @classmethod
    def periods_move_forward(cls, frame: pd.DataFrame) -> pd.Series:
        """A billing period ends after it starts."""
        return frame["period_end"] > frame["period_start"]

    class Config:
        strict = True
        ordered = True


class PricedLines(pa.DataFrameModel):
    """One row per priced invoice line (the lines table's columns plus the engine's keys)."""

    line_id: Series[STRING] = pa.Field(unique=True)
    invoice_id: Series[STRING]
    price_id: Series[STRING] = pa.Field(nullable=True)
    kind: Series[STRING] = pa.Field(isin=list(LINE_KINDS))
    description: Series[STRING] = pa.Field(nullable=True)
    quantity: Series[INT] = pa.Field(ge=0, nullable=True)
    unit_amount_decimal: Series[STRING] = pa.Field(nullable=True)
    amount: Series[INT]
    period_start: Series[UTC_TIME]
    period_end: Series[UTC_TIME]
    invoice_key: Series[STRING]
    item_id: Series[STRING] = pa.Field(nullable=True)
    explain: Series[STRING] = pa.Field(nullable=True)

    class Config:
        strict = True
        ordered = True
