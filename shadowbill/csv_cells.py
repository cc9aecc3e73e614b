"""Text cells made safe to open in a spreadsheet: the one place CSV outputs neutralise formulas.

A spreadsheet evaluates a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula, quoted or not (CSV injection). Following the OWASP
guidance (https://owasp.org/www-community/attacks/CSV_Injection), every *text* cell
shadowbill writes to a CSV file that begins with one of these characters gets a single
quote in front (``=HYPERLINK(...)`` is written ``'=HYPERLINK(...)``); the writer's own
quoting handles commas and double quotes. Numeric columns are never touched: ``-1200``
in an amount column is a number, not text. A table without hostile cells is returned
unchanged, so its bytes are the same as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
_TRIGGERS = pa.array(FORMULA_TRIGGERS, pa.string())


def neutralise_text(value: str) -> str:
    """One text cell, prefixed with ``'`` if a spreadsheet would read it as a formula."""
    return "'" + value if value[:1] in FORMULA_TRIGGERS else value


def _neutralise_array(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The column with hostile cells prefixed, or None when it has none (vectorized)."""
    first = pc.utf8_slice_codeunits(column, 0, 1)
    hostile = pc.fill_null(pc.is_in(first, value_set=_TRIGGERS.cast(column.type)), False)
    if not pc.any(hostile).as_py():
        return None
    quote, empty = pa.scalar("'", column.type), pa.scalar("", column.type)
    prefixed = pc.binary_join_element_wise(quote, column, empty)
    return pc.if_else(hostile, prefixed, column)


def neutralise_table(table: pa.Table) -> pa.Table:
    """An Arrow table with every hostile text cell prefixed (string columns only)."""
    for i, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type):
            column = table[i].cast(kind.value_type)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = table[i]
        else:
            continue
        fixed = _neutralise_array(column)
        if fixed is not None:
            table = table.set_column(i, field.name, fixed)
    return table


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A pandas frame with every hostile text cell prefixed (text columns only)."""
    changed: dict[str, pd.Series] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            continue
        if pd.api.types.is_object_dtype(series.dtype):
            is_text = series.map(lambda v: isinstance(v, str), na_action="ignore")
            is_text = is_text.fillna(False).astype(bool)
        elif pd.api.types.is_string_dtype(series.dtype):
            is_text = series.notna()
        else:
            continue  # datetimes, categories of non-text, ...
        text = series.where(is_text).astype("string")
        hostile = (text.str[:1].isin(FORMULA_TRIGGERS) & is_text).fillna(False).astype(bool)
        if hostile.any():
            changed[str(name)] = series.mask(hostile, "'" + text)
    return frame.assign(**changed) if changed else frame


def neutralise_row(row: Mapping[str, str], columns: frozenset[str]) -> dict[str, str]:
    """A CSV row (column to text) with the cells of ``columns`` neutralised."""
    return {
        k: neutralise_text(v) if k in columns and isinstance(v, str) else v for k, v in row.items()
    }
