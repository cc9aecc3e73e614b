"""The extract spec's column forms applied to source columns: null_if, transform, map, type.

Each conversion returns the canonical values plus, per row, a reason code and a sentence
when the value could not be converted; a bad value never raises. The typed parsing itself
(exact amounts, decimals, timestamps) is in :mod:`shadowbill.extract.value_parsers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.errors import ExtractSpecError
from shadowbill.extract import value_parsers as vp
from shadowbill.extract.quarantine import (
    REASON,
    ROW,
    as_text,
    mark,
    new_staged,
    row_json,
    text_or_empty,
)
from shadowbill.extract.spec import MINOR_UNIT_COLUMNS, ColumnSpec, TableSpec, scalar_text
from shadowbill.money import CURRENCY_EXPONENTS
from shadowbill.snapshot.tables import BOOL, INT, STR, Column, Table, pandas_dtype

# Canonical text columns that hold exact decimal numbers (normalized like "12.5", "20").
DECIMAL_TEXT_COLUMNS = frozenset({"percent_off", "percentage", "unit_amount_decimal"})
MONEY_TYPES = ("major_units", "major_decimal")

# A failure's sentence: fixed text, or built only for the failing rows (given their index).
Why = str | Callable[[pd.Index], pd.Series]


@dataclass
class ColumnResult:
    """A converted column: canonical values, and per row a reason code and sentence (or NA)."""

    values: pd.Series
    reason: pd.Series
    detail: pd.Series

    @property
    def failed(self) -> pd.Series:
        """Rows whose value could not be converted."""
        return self.reason.notna()


def na_text(index: pd.Index) -> pd.Series:
    """An all-missing text column (cheap: one Arrow null array)."""
    return pd.Series(pd.array(pa.nulls(len(index), pa.string()), dtype="string"), index=index)


class _Failures:
    """Per-row reason codes; the first failure of a row wins. Sentences are built lazily."""

    def __init__(self, index: pd.Index) -> None:
        self.index = index
        self._reason: np.ndarray | None = None  # object arrays, None where the row is fine
        self._detail: np.ndarray | None = None

    @property
    def any(self) -> bool:
        """True once some row has failed."""
        return self._reason is not None

    def failed(self) -> np.ndarray:
        """Rows that have failed so far."""
        if self._reason is None:
            return np.zeros(len(self.index), dtype=bool)
        return ~pd.isna(self._reason)

    def add(self, rows: Any, code: pd.Series | str, detail: Why | pd.Series) -> None:
        new = np.asarray(rows, dtype=bool) & ~self.failed()
        if not new.any():
            return
        if self._reason is None or self._detail is None:
            self._reason = np.full(len(self.index), None, dtype=object)
            self._detail = np.full(len(self.index), None, dtype=object)
        at = self.index[new]
        self._reason[new] = code.to_numpy()[new] if isinstance(code, pd.Series) else code
        if callable(detail):
            self._detail[new] = detail(at).to_numpy(dtype=object)
        else:
            self._detail[new] = detail.to_numpy()[new] if isinstance(detail, pd.Series) else detail

    def prefix(self, text: str) -> None:
        """Put ``text`` before every sentence (the column and where its value came from)."""
        if self._detail is not None:
            failed = self.failed()
            self._detail[failed] = text + self._detail[failed].astype(str)

    def result(self, values: pd.Series) -> ColumnResult:
        if self._reason is None:  # nothing failed: one shared all-missing column
            nothing = na_text(self.index)
            return ColumnResult(values, nothing, nothing)
        reason = pd.Series(self._reason, index=self.index, dtype="string")
        return ColumnResult(
            values, reason, pd.Series(self._detail, index=self.index, dtype="string")
        )


def canonical_dtype(column: Column) -> Any:
    """The in-memory pandas dtype of a canonical column (tables.pandas_dtype, as a dtype object)."""
    return pd.api.types.pandas_dtype(pandas_dtype(column.type))


def _series(values: pa.Array, index: pd.Index, dtype: str) -> pd.Series:
    """An Arrow array as a pandas column in one of the canonical dtypes."""
    if dtype.startswith("datetime64"):
        stamps = values.to_pandas().array  # an array, so the index is taken, not aligned on
        return pd.Series(stamps, index=index).astype(pd.api.types.pandas_dtype(dtype))
    return pd.Series(pd.array(values, dtype=dtype), index=index)


@dataclass(frozen=True)
class ConversionContext:
    """What a column conversion needs besides its own values."""

    timezone: str = "UTC"
    naive: str = "localize"  # or "quarantine" (text inputs must carry a zone)
    currency: pd.Series | None = None  # each row's currency, for major_units/major_decimal
    zones: pd.Series | None = None  # each row's IANA zone for naive values (timezone_from)


def _exponents(currency: pd.Series) -> pa.Array:
    """Each row's currency exponent (JPY 0, USD 2, KWD 3); null for an unknown currency."""
    codes = pc.utf8_upper(vp.text_array(currency))
    known = pa.array(list(CURRENCY_EXPONENTS))
    positions = pc.index_in(codes, value_set=known)
    table = pa.array(list(CURRENCY_EXPONENTS.values()), type=pa.int64())
    return pc.take(table, positions)


def _amounts(source: pd.Series, kind: str, ctx: ConversionContext) -> ColumnResult:
    """major_units (integer minor units) or major_decimal (decimal string of minor units)."""
    index = source.index
    fails = _Failures(index)
    currency = ctx.currency if ctx.currency is not None else na_text(index)
    text = vp.text_array(source)
    exps = _exponents(currency)
    shown = pd.Series(pd.array(text, dtype="string"), index=index)

    def unknown(at: pd.Index) -> pd.Series:
        return "currency " + text_or_empty(currency[at]) + " is not an ISO 4217 code"

    if kind == "major_decimal":
        fails.add(
            vp.mask(pc.and_(pc.is_valid(text), pc.is_null(exps))), "unknown_currency", unknown
        )
        number, bad = vp.shift_decimal(text, exps)
        fails.add(bad, "wrong_type", lambda at: "not a decimal amount: " + text_or_empty(shown[at]))
        return fails.result(_series(number, index, "string"))
    parsed = vp.parse_major_units(text, exps)
    fails.add(
        parsed.not_a_number,
        "wrong_type",
        lambda at: "not a decimal amount: " + text_or_empty(shown[at]),
    )
    fails.add(parsed.unknown_currency, "unknown_currency", unknown)
    decimals = pd.Series(pd.array(exps, dtype="Int64"), index=index)
    fails.add(
        parsed.too_many_decimals,
        "too_many_decimals",
        lambda at: (
            text_or_empty(shown[at])
            + " has more decimals than "
            + as_text(currency[at]).str.strip().str.upper()
            + " allows ("
            + decimals[at].astype("string")
            + ")"
        ),
    )
    fails.add(parsed.out_of_range, "wrong_type", lambda at: "amount out of range: " + shown[at])
    return fails.result(_series(parsed.values, index, "Int64"))


def _timestamps(source: pd.Series, ctx: ConversionContext) -> ColumnResult:
    """ISO-8601 text or database timestamps to UTC; naive values per ``ctx.naive``."""
    index = source.index
    fails = _Failures(index)
    refuse = ctx.naive == "quarantine"
    if isinstance(source.dtype, pd.DatetimeTZDtype):
        return fails.result(source.dt.tz_convert("UTC").astype("datetime64[us, UTC]"))
    if pd.api.types.is_datetime64_dtype(source.dtype):  # a database timestamp without zone
        naive = source.notna().to_numpy()
        shown = as_text(source)
        if refuse:
            fails.add(
                naive,
                "naive_timestamp",
                lambda at: "timestamp " + text_or_empty(shown[at]) + " has no time zone",
            )
            return fails.result(pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]"))
        local = pa.array(source.astype("datetime64[us]"), type=pa.timestamp("us"), from_pandas=True)
        zones, bad_zone = vp.zone_names(ctx.zones, ctx.timezone, len(source))
        _unknown_zone(fails, naive & bad_zone, ctx, index)
        values = vp.localize_zones(local, zones)
        fails.add(
            naive & vp.mask(pc.is_null(values)),
            "wrong_type",
            lambda at: (
                text_or_empty(shown[at])
                + " does not exist or is ambiguous in "
                + pd.Series(zones, index=index)[at].astype("string")
            ),
        )
        return fails.result(_series(values, index, "datetime64[us, UTC]"))
    text = vp.text_array(source)
    shown = pd.Series(pd.array(text, dtype="string"), index=index)
    zones, bad_zone = vp.zone_names(ctx.zones, ctx.timezone, len(source))
    if ctx.zones is not None:
        naive_rows = vp.mask(pc.match_substring_regex(text, vp.NAIVE))
        _unknown_zone(fails, naive_rows & bad_zone, ctx, index)
    parsed = vp.parse_timestamp(
        text, ctx.timezone if ctx.zones is None else zones, refuse_naive=refuse
    )
    fails.add(
        parsed.not_a_timestamp,
        "wrong_type",
        lambda at: "not an ISO-8601 timestamp: " + text_or_empty(shown[at]),
    )
    fails.add(
        parsed.naive,
        "naive_timestamp",
        lambda at: (
            "timestamp " + text_or_empty(shown[at]) + " has no time zone (add Z or an offset)"
        ),
    )
    fails.add(
        parsed.not_local,
        "wrong_type",
        lambda at: text_or_empty(shown[at]) + f" does not exist or is ambiguous in {ctx.timezone}",
    )
    return fails.result(_series(parsed.values, index, "datetime64[us, UTC]"))


def _unknown_zone(
    fails: _Failures, rows: np.ndarray, ctx: ConversionContext, index: pd.Index
) -> None:
    """Rows whose ``timezone_from`` value is not an IANA zone name."""
    if ctx.zones is None or not rows.any():
        return
    zones = ctx.zones

    def why(at: pd.Index) -> pd.Series:
        return "time zone " + text_or_empty(zones[at]) + " is not an IANA zone name"

    fails.add(rows, "wrong_type", why)


def _integers(source: pd.Series) -> tuple[pa.Array, np.ndarray]:
    if pd.api.types.is_integer_dtype(source.dtype):
        ints = pa.array(source.astype("Int64"), type=pa.int64(), from_pandas=True)
        return ints, np.zeros(len(source), dtype=bool)
    return vp.parse_integer(vp.text_array(source))


def _refuse_decimal_point(source: pd.Series, fails: _Failures) -> None:
    """Minor units are whole: "195.00" in a minor-unit column is an amount in major units."""
    if pd.api.types.is_integer_dtype(source.dtype):
        return
    text = vp.text_array(source)
    dotted = vp.mask(pc.match_substring_regex(text, r"^\s*[+-]?\d*\.\d*\s*$"))
    fails.add(
        dotted,
        "wrong_type",
        lambda at: (
            text_or_empty(source[at])
            + " has a decimal point: this looks like major units, but the column holds"
            " integer minor units (cents); write 19500 for 195.00, or map it with"
            " type: major_units"
        ),
    )


def to_canonical(
    source: pd.Series, column: Column, ctx: ConversionContext, kind: str | None = None
) -> ColumnResult:
    """Convert a column into the canonical column's type (``kind``: a spec type, or by default)."""
    index = source.index
    fails = _Failures(index)
    if kind in MONEY_TYPES:
        return _amounts(source, str(kind), ctx)
    if kind in ("epoch_seconds", "epoch_millis"):
        ints, bad = _integers(source)
        stamps, out_of_range = vp.epoch_to_timestamp(ints, "s" if kind == "epoch_seconds" else "ms")
        unit = "seconds" if kind == "epoch_seconds" else "milliseconds"
        fails.add(
            bad | out_of_range,
            "wrong_type",
            lambda at: (
                f"not a whole number of {unit} since 1970 in years 1-9999: "
                + text_or_empty(source[at])
            ),
        )
        return fails.result(_series(stamps, index, "datetime64[us, UTC]"))
    if kind == "timestamp" or (kind is None and column.type not in (STR, INT, BOOL)):
        return _timestamps(source, ctx)
    if column.type == INT:
        if kind == "minor_units" or (kind is None and column.name in MINOR_UNIT_COLUMNS):
            _refuse_decimal_point(source, fails)
        ints, bad = _integers(source)
        fails.add(bad, "wrong_type", lambda at: "not a whole number: " + text_or_empty(source[at]))
        return fails.result(_series(ints, index, "Int64"))
    if column.type == BOOL:
        if pd.api.types.is_bool_dtype(source.dtype):
            return fails.result(source.astype("boolean"))
        flags, bad = vp.parse_bool(vp.text_array(source))
        fails.add(bad, "wrong_type", lambda at: "not a yes/no value: " + text_or_empty(source[at]))
        return fails.result(_series(flags, index, "boolean"))
    if kind == "decimal_string" or (kind is None and column.name in DECIMAL_TEXT_COLUMNS):
        zero = pa.array(np.zeros(len(source), dtype=np.int64))
        number, bad = vp.shift_decimal(vp.text_array(source), zero)
        fails.add(
            bad, "wrong_type", lambda at: "not a decimal number: " + text_or_empty(source[at])
        )
        return fails.result(_series(number, index, "string"))
    return fails.result(as_text(source).astype("string"))


def _mapped(raw: pd.Series, spec: ColumnSpec, fails: _Failures) -> pd.Series:
    """Translate a vocabulary with the spec's map; values not in it fail as unmapped_value."""
    mapping = spec.map_text
    text = pa.array(as_text(raw), type=pa.string(), from_pandas=True)
    keys = pa.array(list(mapping), type=pa.string())
    targets = pa.array(list(mapping.values()), type=pa.string())
    positions = pc.index_in(text, value_set=keys)
    shown = ", ".join(list(mapping)[:8]) + (", ..." if len(mapping) > 8 else "")
    text_series = pd.Series(pd.array(text, dtype="string"), index=raw.index)
    fails.add(
        vp.mask(pc.and_(pc.is_valid(text), pc.is_null(positions))),
        "unmapped_value",
        lambda at: (
            "value " + text_or_empty(text_series[at]) + f" is not in the spec's map ({shown})"
        ),
    )
    return pd.Series(pd.array(pc.take(targets, positions), dtype="string"), index=raw.index)


def convert_column(
    source: pd.Series | None,
    spec: ColumnSpec,
    column: Column,
    ctx: ConversionContext,
    index: pd.Index,
) -> ColumnResult:
    """Apply one column spec: constant or source, then null_if, transform, map and type."""
    fails = _Failures(index)
    if spec.is_constant:
        value = None if spec.value is None else scalar_text(spec.value)
        raw = pd.Series(value, index=index, dtype="string")
        name = "constant"
    else:
        assert source is not None
        raw = source
        name = str(spec.from_)
    if spec.null_if:
        nulls = pc.is_in(vp.text_array(raw), value_set=pa.array(spec.null_if_text, pa.string()))
        raw = raw.mask(vp.mask(nulls))
    if spec.transform is not None:
        raw = getattr(as_text(raw).str, spec.transform)().astype("string")
    if spec.map is not None:
        raw = _mapped(raw, spec, fails)
    converted = to_canonical(raw, column, ctx, spec.type)
    if converted.failed.any():
        fails.add(converted.failed, converted.reason, converted.detail)
    dtype = canonical_dtype(column)
    values = converted.values.astype(dtype)
    if fails.any:
        fails.prefix(f"{column.name} (from {name}): ")
        values = values.where(~fails.failed()).astype(dtype)
    return fails.result(values)


def convert_columns(
    frame: pd.DataFrame,
    columns: Mapping[str, ColumnSpec],
    schema: tuple[Column, ...],
    ctx: ConversionContext,
) -> dict[str, ColumnResult]:
    """Convert every canonical column the spec names; money columns after the currency they use."""
    results: dict[str, ColumnResult] = {}
    ordered = [c for c in schema if c.name in columns and columns[c.name].type not in MONEY_TYPES]
    ordered += [c for c in schema if c.name in columns and columns[c.name].type in MONEY_TYPES]
    for column in ordered:
        spec = columns[column.name]
        source = None if spec.is_constant else frame[str(spec.from_)]
        currency = None
        if spec.type in MONEY_TYPES:
            currency = _currency_of(spec, results, frame)
        zones = frame[spec.timezone_from] if spec.timezone_from is not None else ctx.zones
        ctx_col = ConversionContext(ctx.timezone, ctx.naive, currency, zones)
        result = convert_column(source, spec, column, ctx_col, frame.index)
        if spec.date_in_zone is not None or spec.date_in_zone_from is not None:
            day_zones = (
                frame[spec.date_in_zone_from] if spec.date_in_zone_from is not None else None
            )
            result = _local_day_start(result, day_zones, spec.date_in_zone or ctx.timezone)
        results[column.name] = result
    return results


def _local_day_start(result: ColumnResult, zones: pd.Series | None, default: str) -> ColumnResult:
    """UTC instants moved to the start of their local day (each row's zone; one pass per zone).

    Legacy engines bill on local dates while storing event times with a time of day; this
    puts both on the same local midnight (a time skipped by DST moves forward).
    """
    values = result.values
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        return result
    names, bad = vp.zone_names(zones, default, len(values))
    out = values.copy()
    for zone in pd.unique(names):
        rows = names == zone
        local = values[rows].dt.tz_convert(str(zone))
        midnight = local.dt.tz_localize(None).dt.normalize()
        out[rows] = midnight.dt.tz_localize(
            str(zone), ambiguous=True, nonexistent="shift_forward"
        ).dt.tz_convert("UTC")
    fails = _Failures(values.index)
    fails.add(result.failed, result.reason, result.detail)
    if zones is not None:
        fails.add(
            bad & values.notna().to_numpy(),
            "wrong_type",
            lambda at: "time zone " + text_or_empty(zones[at]) + " is not an IANA zone name",
        )
    return fails.result(out.where(~fails.failed()).astype(values.dtype))


def _currency_of(
    spec: ColumnSpec, results: Mapping[str, ColumnResult], frame: pd.DataFrame
) -> pd.Series:
    """Each row's currency: the spec's constant, a converted canonical column or a source column."""
    if spec.currency is not None:
        return pd.Series(spec.currency, index=frame.index, dtype="string")
    name = str(spec.currency_from)
    if name in results:
        return results[name].values
    return frame[name]


def check_source_columns(
    frame: pd.DataFrame, name: str, spec: TableSpec, where: Callable[..., str]
) -> None:
    """Every source column the spec names must exist in the source; the error names the spec line."""
    have = set(frame.columns)
    shown = ", ".join(map(str, frame.columns[:30]))
    canonical = set(spec.columns)
    for target, col in spec.columns.items():
        needed = [("from", col.from_)] if col.from_ is not None else []
        if col.currency_from is not None and col.currency_from not in canonical:
            needed.append(("currency_from", col.currency_from))
        for key, source in needed:
            if source not in have:
                at = where("tables", name, "columns", target)
                raise ExtractSpecError(
                    f"{at}: {key} column {source!r} is not in {spec.source_label} (it has: {shown})"
                )
    if spec.source_key is not None and spec.source_key not in have:
        at = where("tables", name, "source_key")
        raise ExtractSpecError(f"{at}: column {spec.source_key!r} is not in {spec.source_label}")
    for target, col in spec.columns.items():
        for key in ("timezone_from", "date_in_zone_from"):
            named = getattr(col, key)
            if named is not None and named not in have:
                at = where("tables", name, "columns", target)
                raise ExtractSpecError(
                    f"{at}: {key} column {named!r} is not in {spec.source_label} (it has: {shown})"
                )
    if spec.timezone_from is not None and spec.timezone_from not in have:
        at = where("tables", name, "timezone_from")
        raise ExtractSpecError(
            f"{at}: column {spec.timezone_from!r} is not in {spec.source_label} (it has: {shown})"
        )


def convert_chunk(
    frame: pd.DataFrame, table: Table, spec: TableSpec, *, timezone: str, offset: int = 0
) -> pd.DataFrame:
    """One chunk of source rows as a staged canonical frame; conversion failures already marked.

    ``offset`` is how many source rows came before this chunk (for "query row N" references).
    """
    frame = frame.reset_index(drop=True)
    zones = frame[spec.timezone_from] if spec.timezone_from is not None else None
    ctx = ConversionContext(timezone, zones=zones)
    results = convert_columns(frame, spec.columns, table.columns, ctx)
    canonical = pd.DataFrame(
        {
            c.name: results[c.name].values
            if c.name in results
            else pd.Series(index=frame.index, dtype=canonical_dtype(c))
            for c in table.columns
        },
        index=frame.index,
    )
    key_col = spec.key_source_column(table.key[0]) if table.key else None
    numbers = pd.Series(np.arange(offset + 1, offset + len(frame) + 1), index=frame.index)
    by_number = f"{spec.source_label} row " + numbers.astype("string")
    if key_col is not None and key_col in frame.columns:
        refs = (f"{spec.source_label} {key_col}=" + as_text(frame[key_col])).fillna(by_number)
    else:
        refs = by_number
    staged = new_staged(canonical, refs)
    for column in table.columns:
        result = results.get(column.name)
        if result is not None and result.failed.any():
            mark(staged, table, result.failed, result.reason, result.detail)
    failed = staged[REASON].notna()
    if failed.any():
        staged.loc[failed, ROW] = row_json(frame.loc[failed])
    return staged
