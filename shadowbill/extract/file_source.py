"""A folder of canonical CSV or Parquet files (customers.csv, invoices.parquet, ...) as staged tables.

Columns must be the canonical ones: an unknown column or a missing required column is an
error naming the file and the column (a misspelt header would otherwise silently empty a
column). A missing optional column is empty; a missing file is an empty table. Cells are
read as text and typed by validation, so a bad cell quarantines its row (``wrong_type``);
a row with bytes that are not UTF-8 is quarantined as ``not_utf8`` and a row with the wrong
number of fields as ``malformed_row``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shadowbill.errors import InputError, SourceError
from shadowbill.extract.quarantine import (
    DETAIL,
    REASON,
    REF,
    ROW,
    mark,
    new_staged,
    row_json,
    text_or_empty,
)
from shadowbill.extract.sql_source import arrow_to_pandas
from shadowbill.snapshot.tables import TABLES, Table

SUFFIXES = (".csv", ".parquet")
# Bytes that are not UTF-8 become this marker plus their hex, so the rows holding them can be
# found with vectorized string search. U+FDD0 is a Unicode noncharacter: never in real text.
_MARK = "\ufdd0"
_ERROR_HANDLER = "shadowbill-mark-bytes"


def _mark_bytes(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(f"{_MARK}{b:02X}" for b in bad), exc.end


codecs.register_error(_ERROR_HANDLER, _mark_bytes)


@dataclass(frozen=True)
class TableFile:
    """One canonical table's file in a source folder."""

    table: Table
    path: Path


def find_table_files(folder: Path) -> list[TableFile]:
    """The canonical table files of a folder; unknown or doubled table files are errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            continue
        name = path.stem
        if name not in TABLES:
            known = ", ".join(f"{t}.csv" for t in TABLES)
            raise InputError(f"{path}: not a canonical table file (expected one of {known})")
        if name in found:
            raise InputError(f"{path}: table {name} is also given by {found[name].name}; keep one")
        found[name] = path
    if not found:
        raise SourceError(f"{folder}: no canonical CSV or Parquet files (customers.csv, ...)")
    return [TableFile(TABLES[n], found[n]) for n in TABLES if n in found]


def _check_columns(path: Path, table: Table, header: list[str]) -> None:
    """Unknown, doubled or missing required columns are errors naming file and column."""
    seen: set[str] = set()
    for col in header:
        if col not in table.column_names:
            known = ", ".join(table.column_names)
            raise InputError(f"{path}: unknown column {col!r} (columns of {table.name}: {known})")
        if col in seen:
            raise InputError(f"{path}: column {col!r} appears twice in the header")
        seen.add(col)
    for c in table.columns:
        if c.required and c.name not in seen:
            raise InputError(f"{path}: missing required column {c.name!r} of {table.name}")


def _read_bytes(path: Path) -> bytes:
    """The file's bytes without a UTF-8 byte-order mark; UTF-16 is refused by name."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"{path}: the file is UTF-16; save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    return data


def _is_utf8(data: bytes) -> bool:
    """Whether the bytes are valid UTF-8, checked by Arrow without decoding them in Python."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _with_markers(data: bytes) -> bytes:
    """UTF-8 bytes in which every byte that was not UTF-8 became a findable marker."""
    return data.decode("utf-8", errors=_ERROR_HANDLER).encode("utf-8")


def _header(path: Path, data: bytes) -> list[str]:
    first = next(csv.reader(io.StringIO(data[: 1 << 16].decode("utf-8", "replace"))), None)
    if not first:
        raise InputError(f"{path}: empty file (expected a header row)")
    header = [c.strip() for c in first]
    if any(_MARK in c for c in header):
        raise InputError(f"{path}: the header row is not UTF-8 text")
    return header


@dataclass(frozen=True)
class _Malformed:
    number: int  # data row, 1-based (the header is not counted)
    problem: str
    text: str


def _parse(data: bytes, header: list[str], threads: bool) -> tuple[pa.Table, list[_Malformed]]:
    bad: list[_Malformed] = []

    def skip(row: pacsv.InvalidRow) -> str:
        problem = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        bad.append(_Malformed((row.number or 1) - 1, problem, row.text.replace(_MARK, "\\x")))
        return "skip"

    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(use_threads=threads, column_names=header, skip_rows=1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
        ),
    )
    return table, bad


def _parse_all(data: bytes, header: list[str]) -> tuple[pa.Table, list[_Malformed]]:
    """Parse in parallel; again on one thread when rows were malformed (to number them)."""
    arrow, malformed = _parse(data, header, threads=True)
    if malformed:
        arrow, malformed = _parse(data, header, threads=False)
    return arrow, malformed


def read_csv_table(path: Path, table: Table) -> pd.DataFrame:
    """A canonical CSV as a staged text frame: bad bytes and malformed rows already marked."""
    data = _read_bytes(path)
    header = _header(path, data)
    _check_columns(path, table, header)
    has_bad_bytes = not _is_utf8(data)
    if has_bad_bytes:  # only then is the file decoded in Python, marking the bad bytes
        data = _with_markers(data)
    try:
        arrow, malformed = _parse_all(data, header)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    text = arrow_to_pandas(arrow)
    frame = pd.DataFrame(
        {
            c.name: text[c.name]
            if c.name in text
            else pd.Series(pd.NA, index=text.index, dtype="string")
            for c in table.columns
        }
    )
    total = len(frame) + len(malformed)
    skipped = np.array([m.number for m in malformed], dtype=np.int64)
    numbers = np.setdiff1d(np.arange(1, total + 1), skipped)
    refs = pd.Series(numbers, index=frame.index).astype("string")
    staged = new_staged(frame, f"{path.name} row " + refs)
    if has_bad_bytes:
        _mark_not_utf8(staged, table, text)
    if malformed:
        staged = pd.concat([staged, _malformed_rows(path, table, malformed)], ignore_index=True)
    return staged


def _mark_not_utf8(staged: pd.DataFrame, table: Table, text: pd.DataFrame) -> None:
    """Rows with non-UTF-8 bytes: quarantined as not_utf8, with the bytes shown as \\xNN."""
    bad_cols = {c: text[c].str.contains(_MARK, regex=False).fillna(False) for c in text.columns}
    bad_row = pd.concat(bad_cols, axis=1).any(axis=1)
    first_col = pd.concat(bad_cols, axis=1).idxmax(axis=1)
    shown = text.loc[bad_row].apply(lambda col: col.str.replace(_MARK, "\\x", regex=False))
    staged.loc[bad_row, ROW] = row_json(shown)
    for col in text.columns:  # clean the cells so typing does not add a second reason
        staged.loc[bad_cols[col], col] = pd.NA
    bad_value = pd.Series(pd.NA, index=staged.index, dtype="string")
    for col in text.columns:
        here = bad_row & (first_col == col)
        bad_value[here] = text.loc[here, col].str.replace(_MARK, "\\x", regex=False)
    mark(
        staged,
        table,
        bad_row,
        "not_utf8",
        "column "
        + first_col.astype("string")
        + " holds bytes that are not UTF-8 text: "
        + text_or_empty(bad_value),
    )


def _malformed_rows(path: Path, table: Table, malformed: list[_Malformed]) -> pd.DataFrame:
    """One staged row per malformed CSV row, already quarantined with its raw text."""
    index = pd.RangeIndex(len(malformed))
    empty = pd.DataFrame(
        {c.name: pd.Series(pd.NA, index=index, dtype="string") for c in table.columns}
    )
    numbers = pd.Series([m.number for m in malformed], index=index).astype("string")
    rows = new_staged(empty, f"{path.name} row " + numbers)
    rows[REASON] = "malformed_row"
    detail = [f"{m.problem}: {m.text}" for m in malformed]  # per malformed row, never many
    rows[DETAIL] = (
        table.name
        + " row from "
        + rows[REF]
        + ": "
        + pd.Series(detail, index=index, dtype="string")
    ).astype("string")
    rows[ROW] = pd.Series(
        [json.dumps({"text": m.text}) for m in malformed], index=index, dtype="string"
    )
    return rows


def read_parquet_table(path: Path, table: Table) -> pd.DataFrame:
    """A canonical Parquet file as a staged frame (columns typed by validation when they differ)."""
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})"
        ) from None
    _check_columns(path, table, arrow.column_names)
    data = arrow_to_pandas(arrow)
    frame = pd.DataFrame(
        {
            c.name: data[c.name]
            if c.name in data
            else pd.Series(pd.NA, index=data.index, dtype="string")
            for c in table.columns
        }
    )
    numbers = pd.Series(np.arange(1, len(frame) + 1), index=frame.index).astype("string")
    return new_staged(frame, f"{path.name} row " + numbers)


def read_table_file(file: TableFile) -> pd.DataFrame:
    """Read one table file of a source folder as a staged frame."""
    if file.path.suffix.lower() == ".csv":
        return read_csv_table(file.path, file.table)
    return read_parquet_table(file.path, file.table)
