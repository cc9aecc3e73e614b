"""Why rows are rejected: stable reason codes, per-row marking, and the quarantine frame.

Between reading a source and writing a snapshot, each canonical table is a *staged* frame:
the canonical columns plus four bookkeeping columns. A row is marked at most once (the
first rule it breaks wins), so every source row ends in exactly one place: its table or
the quarantine, and ``rows_in == rows_out + quarantined`` holds by construction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.snapshot.tables import QUARANTINE, Table, empty_frame

REF = "_ref"  # where the row came from: "customers.csv row 17", "accounts acct_no=42"
REASON = "_reason"  # stable code, NA while the row is fine
DETAIL = "_detail"  # a sentence naming table, key and value
ROW = "_row"  # the source row as JSON text, kept for rows rejected before typing
BOOKKEEPING = (REF, REASON, DETAIL, ROW)

# Stable reason codes and what they mean (shown in summaries and docs).
REASONS: dict[str, str] = {
    "malformed_row": "the CSV row does not have the header's number of fields",
    "not_utf8": "the row holds bytes that are not UTF-8 text",
    "wrong_type": "a value cannot be read as the column's type",
    "unmapped_value": "a source value is not in the spec's map",
    "naive_timestamp": "a timestamp in a text input has no time zone",
    "too_many_decimals": "an amount has more decimals than its currency allows",
    "unknown_currency": "a currency is not an ISO 4217 code",
    "missing_value": "a required column is empty",
    "invalid_enum": "a value is not in the column's vocabulary",
    "negative_value": "a quantity or amount that cannot be negative is negative",
    "period_out_of_order": "a period or validity does not end after it starts",
    "duplicate_key": "the table's key appears more than once (every copy is quarantined)",
    "overlapping_history": "an item's validity rows overlap (the item's history is quarantined)",
    "invoice_total_mismatch": "total is not subtotal - discount + tax",
    "invoice_lines_mismatch": "an invoice's lines do not add up to its subtotal (invoice and lines)",
    "dangling_foreign_key": "a reference names no row of the parent table",
    "parent_quarantined": "the parent row this row belongs to is quarantined",
}

Detail = str | pd.Series | Callable[[pd.DataFrame], pd.Series]


def _arrow_text(values: pd.Series) -> pa.Array:
    return pa.array(as_text(values), type=pa.string(), from_pandas=True)


def _as_series(values: pa.Array, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(values, dtype="string"), index=index)


def text_or_empty(values: pd.Series, limit: int = 60) -> pd.Series:
    """Values quoted for a sentence (``'abc'``), ``empty`` for a missing value."""
    text = _arrow_text(values)
    long = pc.greater(pc.utf8_length(text), limit)
    if pc.any(long).as_py():
        cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, limit), "...", "")
        text = pc.if_else(long, cut, text)
    quoted = pc.binary_join_element_wise("'", text, "'", "")
    return _as_series(pc.fill_null(quoted, "empty"), values.index)


def as_text(values: pd.Series) -> pd.Series:
    """Any column as text: integers in full, booleans true/false, timestamps in ISO-8601."""
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA:
        return values
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        aware = isinstance(dtype, pd.DatetimeTZDtype)
        stamps = values.dt.tz_convert("UTC") if aware else values
        text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").astype("string")
        text = text.str.replace(".000000", "", regex=False)
        return (text + "Z") if aware else text
    if pd.api.types.is_bool_dtype(dtype):
        return values.astype("boolean").map({True: "true", False: "false"}).astype("string")
    return values.astype("string")


def new_staged(frame: pd.DataFrame, refs: pd.Series) -> pd.DataFrame:
    """Add the bookkeeping columns to a canonical frame: references given, nothing marked."""
    out = frame.copy()
    out[REF] = refs.astype("string").to_numpy()
    for col in (REASON, DETAIL, ROW):
        out[col] = pd.Series(pd.NA, index=frame.index, dtype="string")
    return out


def stage(frame: pd.DataFrame, table: Table, label: str | None = None) -> pd.DataFrame:
    """A canonical frame staged for validation, refs numbered ``<label> row N``."""
    if REF in frame.columns:
        return frame
    label = label or table.name
    numbers = pd.Series(range(1, len(frame) + 1), index=frame.index).astype("string")
    return new_staged(frame, f"{label} row " + numbers)


def row_label(frame: pd.DataFrame, table: Table) -> pd.Series:
    """``customers customer_id='C1'`` for each row; the source reference when the key is empty."""
    parts: list[pa.Array | str] = []
    known = pa.array(np.ones(len(frame), dtype=bool))
    for i, col in enumerate(table.key):
        value = _arrow_text(frame[col])
        known = pc.and_(known, pc.is_valid(value))
        parts += [(" " if i == 0 else ", ") + col + "='", value, "'"]
    label = pc.binary_join_element_wise(table.name, *parts, "")
    by_ref = pc.binary_join_element_wise(f"{table.name} row from ", _arrow_text(frame[REF]), "")
    return _as_series(pc.if_else(pc.fill_null(known, False), label, by_ref), frame.index)


def mark(
    frame: pd.DataFrame, table: Table, mask: pd.Series, code: str | pd.Series, detail: Detail
) -> int:
    """Quarantine the unmarked rows of ``mask`` with a reason; returns how many were marked.

    ``code`` is one reason or one per row; ``detail`` says what is wrong (a string, a Series
    aligned with ``frame`` or a function of the marked rows); the row's table and key are
    prefixed to it.
    """
    hit = np.asarray(mask.fillna(False), dtype=bool)
    if not hit.any():
        return 0
    new = hit & frame[REASON].isna().to_numpy()
    count = int(new.sum())
    if not count:
        return 0
    at = frame.index[new]
    codes = code[at] if isinstance(code, pd.Series) else code
    assert set(pd.unique(pd.Series(codes))) <= set(REASONS), f"undeclared reason code in {codes}"
    if callable(detail):
        what = detail(frame.loc[at])
    elif isinstance(detail, pd.Series):
        what = detail[at]
    else:
        what = pd.Series(detail, index=at)
    label = row_label(frame.loc[at, [*table.key, REF]], table)
    frame.loc[at, REASON] = codes
    frame.loc[at, DETAIL] = (label + ": " + what.astype("string")).to_numpy()
    return count


def row_json(frame: pd.DataFrame) -> pd.Series:
    """Each row as a JSON object of its values as text (how quarantine keeps rejected rows)."""
    if frame.empty:
        return pd.Series([], index=frame.index, dtype="string")
    text = pd.DataFrame({c: as_text(frame[c]) for c in frame.columns}, index=frame.index)
    # ASCII-escaped JSON: a record never contains a raw newline, so lines are records.
    lines = text.to_json(orient="records", lines=True, force_ascii=True).rstrip("\n")
    return pd.Series(lines.split("\n"), index=frame.index, dtype="string")


@functools.cache
def _empty_quarantine() -> pd.DataFrame:
    return empty_frame(QUARANTINE)


def empty_quarantine() -> pd.DataFrame:
    """An empty quarantine frame (a fresh copy of a cached one)."""
    return _empty_quarantine().copy()


def split_staged(frame: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table's clean rows (canonical columns only) and its quarantine rows."""
    bad = frame[REASON].notna()
    if not bad.any():
        return frame[table.column_names].reset_index(drop=True), empty_quarantine()
    clean = frame.loc[~bad, table.column_names].reset_index(drop=True)
    rejected = frame.loc[bad]
    source_row = rejected[ROW]
    missing = source_row.isna()
    if missing.any():
        source_row = source_row.copy()
        source_row[missing] = row_json(rejected.loc[missing, table.column_names])
    quarantine = pd.DataFrame(
        {
            "table": pd.Series(table.name, index=rejected.index, dtype="string"),
            "source_ref": rejected[REF],
            "reason": rejected[REASON],
            "detail": rejected[DETAIL],
            "row": source_row,
        }
    ).reset_index(drop=True)
    return clean, quarantine.astype("string")
