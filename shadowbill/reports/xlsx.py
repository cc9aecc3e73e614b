"""A small, vectorized XLSX (SpreadsheetML) writer for large frames.

openpyxl and XlsxWriter write a workbook cell by cell in Python: on this project's
machines about 1M cells took 35 s (openpyxl) and 14 s (XlsxWriter), far too slow for
100,000 customers. This writer builds each column's cell XML with numpy/Arrow string
operations and streams the sheets into the zip in chunks. It writes what the finance
workbook needs and nothing more: inline strings (never formulas), integers, exact
decimal numbers in per-currency formats, percentages, dates, bold headers, column
widths and a frozen header row. Read back with openpyxl in the tests.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.money import exponent

Kind = Literal["text", "int", "money", "percent", "date"]

MAX_CELL_CHARS = 32_767
CHUNK_ROWS = 100_000
_ILLEGAL_XML = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
_US_PER_DAY = 86_400_000_000

_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


@dataclass(frozen=True)
class Column:
    """One sheet column: header, kind and source column (and, for money, the currency's)."""

    header: str
    source: str
    kind: Kind = "text"
    currency: str | None = None  # money: the frame column naming each row's currency
    width: int = 14
    bold: bool = False  # text only


@dataclass(frozen=True)
class Block:
    """Rows of a sheet from one frame; blocks of a sheet are separated by a blank row."""

    frame: pd.DataFrame
    columns: tuple[Column, ...]
    header: bool = True


@dataclass(frozen=True)
class Sheet:
    """A worksheet: its name, blocks, and whether the first row stays visible."""

    name: str
    blocks: tuple[Block, ...]
    freeze_header: bool = False
    widths: tuple[int, ...] = field(default_factory=tuple)


def column_letter(index: int) -> str:
    """Excel's column letters for a 0-based index (0 -> A, 26 -> AA)."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def currency_format(currency: str) -> str:
    """The Excel number format of a currency: its decimals and its code."""
    exp = exponent(currency)
    digits = "#,##0" + ("." + "0" * exp if exp else "")
    return f'{digits} "{currency}";-{digits} "{currency}"'


class _Styles:
    """Cell formats: 0 plain, 1 bold, 2 date, 3 percent, then one per currency."""

    def __init__(self, currencies: Sequence[str]) -> None:
        self.currencies = sorted(set(currencies))
        self.money = {cur: 4 + i for i, cur in enumerate(self.currencies)}

    def xml(self) -> str:
        fmts = ['<numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'] + [
            f'<numFmt numFmtId="{165 + i}" formatCode={quoteattr(currency_format(c))}/>'
            for i, c in enumerate(self.currencies)
        ]
        xfs = [
            '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
            '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>',
            '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>',
            '<xf numFmtId="10" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>',
        ] + [
            f'<xf numFmtId="{165 + i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
            for i in range(len(self.currencies))
        ]
        return (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet {_NS}>'
            f'<numFmts count="{len(fmts)}">{"".join(fmts)}</numFmts>'
            '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
            '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
            '<fills count="2"><fill><patternFill patternType="none"/></fill>'
            '<fill><patternFill patternType="gray125"/></fill></fills>'
            '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
            '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
            f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
            '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
            "</styleSheet>"
        )


def _join(*parts: object, nulls: str = "emit_null") -> pa.Array:
    """Element-wise concatenation of string arrays and scalars, in Arrow (C++)."""
    return pc.binary_join_element_wise(*parts, "", null_handling=nulls, null_replacement="")


def _strings(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _present(series: pd.Series) -> pa.Array:
    return pa.array(series.notna().to_numpy(dtype=bool))


def decimal_text(minor: np.ndarray, exps: np.ndarray) -> pa.Array:
    """Exact decimal strings of integers scaled by 10**-exp per row (no float)."""
    minor = np.asarray(minor, dtype=np.int64)
    exps = np.asarray(exps, dtype=np.int64)
    magnitude = np.abs(minor)
    out: pa.Array | None = None
    for e in np.unique(exps):  # a handful of distinct exponents
        whole, frac = np.divmod(magnitude, 10 ** int(e))
        text = _strings(whole)
        if e:
            text = _join(text, ".", pc.utf8_lpad(_strings(frac), width=int(e), padding="0"))
        out = text if out is None else pc.if_else(pa.array(exps == e), text, out)
    assert out is not None
    return pc.if_else(pa.array(minor < 0), _join("-", out), out)


def _text_cells(series: pd.Series, ref: pa.Array, bold: bool) -> pa.Array:
    text = pa.array(series.astype("string").astype(object), pa.string(), from_pandas=True)
    text = pc.utf8_slice_codeunits(text, 0, MAX_CELL_CHARS)
    text = pc.replace_substring_regex(text, _ILLEGAL_XML, "\ufffd")
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        text = pc.replace_substring(text, raw, entity)
    style = ' s="1"' if bold else ""
    return _join(
        '<c r="', ref, f'"{style} t="inlineStr"><is><t xml:space="preserve">', text, "</t></is></c>"
    )


def _number_cells(text: pa.Array, present: pa.Array, ref: pa.Array, style: object) -> pa.Array:
    value = pc.if_else(present, text, pa.scalar(None, pa.string()))
    return _join('<c r="', ref, '" s="', style, '"><v>', value, "</v></c>")


def _column_cells(frame: pd.DataFrame, col: Column, styles: _Styles, ref: pa.Array) -> pa.Array:
    """Each row's cell XML for one column, null where the row has no value."""
    series = frame[col.source]
    if col.kind == "text":
        return _text_cells(series, ref, col.bold)
    present = _present(series)
    if col.kind == "int":
        values = series.astype("Int64").fillna(0).to_numpy(dtype=np.int64)
        text = pc.if_else(present, _strings(values), pa.scalar(None, pa.string()))
        return _join('<c r="', ref, '"><v>', text, "</v></c>")
    if col.kind == "date":
        stamps = pd.to_datetime(series, utc=True).dt.tz_convert(None)
        micros = (stamps - _EXCEL_EPOCH).to_numpy(dtype="timedelta64[us]").astype(np.int64)
        micros = np.where(present.to_numpy(zero_copy_only=False), micros, 0)
        days, rest = np.divmod(micros, _US_PER_DAY)
        exact = pa.array(rest == 0)
        text = pc.if_else(exact, _strings(days), _strings(micros / _US_PER_DAY))
        return _number_cells(text, present, ref, "2")
    minor = series.astype("Int64").fillna(0).to_numpy(dtype=np.int64)
    if col.kind == "percent":  # basis points of a percent -> a ratio, exactly
        return _number_cells(decimal_text(minor, np.full(len(minor), 4)), present, ref, "3")
    assert col.currency is not None, f"money column {col.source} needs its currency column"
    codes, uniques = pd.factorize(frame[col.currency].astype("string").str.upper().fillna(""))
    exps = np.array([exponent(c) if c else 2 for c in uniques] or [2])[codes]
    style = np.array([str(styles.money.get(c, 0)) for c in uniques] or ["0"], dtype=object)[codes]
    return _number_cells(decimal_text(minor, exps), present, ref, pa.array(style, pa.string()))


def _header_xml(row: int, headers: Sequence[str]) -> str:
    cells = "".join(
        f'<c r="{column_letter(j)}{row}" s="1" t="inlineStr"><is><t>{escape(h)}</t></is></c>'
        for j, h in enumerate(headers)
    )
    return f'<row r="{row}">{cells}</row>'


def _contiguous(rows: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a string array without a copy per row."""
    rows = pa.concat_arrays([rows]) if rows.offset else rows
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32, count=len(rows) + 1)
    return memoryview(rows.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def _block_rows(block: Block, first_row: int, styles: _Styles) -> Iterator[bytes | memoryview]:
    """The XML of a block's rows, in chunks, starting at sheet row ``first_row``."""
    row = first_row
    if block.header:
        yield _header_xml(row, [c.header for c in block.columns]).encode()
        row += 1
    for start in range(0, len(block.frame), CHUNK_ROWS):
        chunk = block.frame.iloc[start : start + CHUNK_ROWS]
        numbers = _strings(np.arange(row + start, row + start + len(chunk), dtype=np.int64))
        cells = [
            _column_cells(chunk, col, styles, _join(column_letter(j), numbers))
            for j, col in enumerate(block.columns)
        ]
        rows = _join('<row r="', numbers, '">', *cells, "</row>", nulls="replace")
        yield _contiguous(rows)


def block_height(block: Block) -> int:
    """Rows a block takes, header included."""
    return len(block.frame) + (1 if block.header else 0)


def _sheet_parts(sheet: Sheet, styles: _Styles) -> Iterator[str | bytes | memoryview]:
    widths = sheet.widths or tuple(
        max((b.columns[j].width for b in sheet.blocks if j < len(b.columns)), default=12)
        for j in range(max((len(b.columns) for b in sheet.blocks), default=0))
    )
    yield f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} {_NS_R}>'
    if sheet.freeze_header:
        yield (
            '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
            'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
        )
    if widths:
        cols = "".join(
            f'<col min="{j + 1}" max="{j + 1}" width="{w}" customWidth="1"/>'
            for j, w in enumerate(widths)
        )
        yield f"<cols>{cols}</cols>"
    yield "<sheetData>"
    row = 1
    for block in sheet.blocks:
        yield from _block_rows(block, row, styles)
        row += block_height(block) + 1
    yield "</sheetData></worksheet>"


def _currencies(sheets: Sequence[Sheet]) -> list[str]:
    found: set[str] = set()
    for sheet in sheets:
        for block in sheet.blocks:
            for col in block.columns:
                if col.kind == "money" and col.currency is not None:
                    values = block.frame[col.currency].astype("string").str.upper().dropna()
                    found.update(str(v) for v in values.unique() if v)
    return sorted(found)


def write_workbook(path: Path, sheets: Sequence[Sheet]) -> Path:
    """Write the sheets as one .xlsx file and return its path."""
    styles = _Styles(_currencies(sheets))
    # Excel forbids []:*?/\ in sheet names and allows 31 characters.
    names = [re.sub(r"[\[\]:*?/\\]", "_", s.name)[:31] for s in sheets]
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook {_NS} {_NS_R}><sheets>'
        + "".join(
            f'<sheet name={quoteattr(n)} sheetId="{i + 1}" r:id="rId{i + 1}"/>'
            for i, n in enumerate(names)
        )
        + "</sheets></workbook>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + "".join(
            f'<Relationship Id="rId{i + 1}" Type="{_REL}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
            for i in range(len(sheets))
        )
        + f'<Relationship Id="rId{len(sheets) + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        + "</Relationships>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" ContentType="{_CT}.worksheet+xml"/>'
            for i in range(len(sheets))
        )
        + "</Types>"
    )
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("[Content_Types].xml", content_types)
        zf.writestr("_rels/.rels", root_rels)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", rels)
        zf.writestr("xl/styles.xml", styles.xml())
        for i, sheet in enumerate(sheets):
            with zf.open(f"xl/worksheets/sheet{i + 1}.xml", "w", force_zip64=True) as out:
                for part in _sheet_parts(sheet, styles):
                    out.write(part.encode("utf-8") if isinstance(part, str) else part)
    return path
