"""Exact parsers from text to typed Arrow arrays: integers, decimals, amounts, yes/no, timestamps.

Vectorized with Arrow compute (no Python per value, no float). Each parser returns the
values (null where missing or unreadable) and boolean masks of the rows that failed, by
reason, so callers quarantine rows instead of raising. Amounts are read on their digits:
"39.50" USD is 39 * 10**2 + 50 * 10**(2 - 2) = 3950 minor units.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.extract.quarantine import as_text

Mask = npt.NDArray[np.bool_]

_NUMBER = r"^(?P<sign>[+-]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?$"
# Scientific notation as Arrow prints a DECIMAL whose exponent is below -6 (Java BigDecimal's
# rule): a MariaDB/MySQL DECIMAL(p, 9) zero arrives as "0E-9". Only that form is read ("1e3" is not).
_SCIENTIFIC = r"^(?P<sign>[+-]?)(?P<int>\d+)(?:\.(?P<frac>\d+))?E(?P<exp>-\d{1,2})$"
_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$"
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_ZONED = _DATE_TIME + r"\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
NAIVE = _DATE_TIME + "$"
_MAX_DIGITS = 18  # int64 holds every 18-digit integer
_EPOCH_SECONDS = (-62_135_596_800, 253_402_300_799)  # 0001-01-01 .. 9999-12-31
_TRUE = ["1", "true", "t", "yes", "y"]
_FALSE = ["0", "false", "f", "no", "n"]
TS_UTC = pa.timestamp("us", tz="UTC")
_NULL_TEXT = pa.scalar(None, pa.string())


def mask(values: pa.Array) -> Mask:
    """A boolean Arrow array as a numpy mask; null counts as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def text_array(values: pd.Series) -> pa.Array:
    """Any column as trimmed Arrow text; empty strings are missing."""
    arr = pa.array(as_text(values), type=pa.string(), from_pandas=True)
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(pc.utf8_length(arr), 0), _NULL_TEXT, arr)


@dataclass(frozen=True)
class NumberParts:
    """Plain decimal text split into sign, integer digits (no leading zeros) and fraction digits."""

    sign: pa.Array
    int_digits: pa.Array
    frac: pa.Array
    ok: pa.Array  # the text is a plain decimal number

    @property
    def negative(self) -> pa.Array:
        """Rows written with a minus sign."""
        return pc.equal(self.sign, "-")


def expand_scientific(text: pa.Array) -> pa.Array:
    """Numbers in scientific notation rewritten as plain decimals ("0E-9" -> "0.000000000").

    Exact, on the digits: Arrow renders a DECIMAL with 7+ decimals this way (a MariaDB or
    MySQL ``DECIMAL(15, 9)`` zero arrives as ``0E-9``); other text is left as it is.
    """
    sci = pc.fill_null(pc.match_substring_regex(text, _SCIENTIFIC), False)
    if not pc.any(sci).as_py():
        return text
    parts = pc.extract_regex(pc.if_else(sci, text, _NULL_TEXT), _SCIENTIFIC)
    sign, whole, frac, exp = (pc.struct_field(parts, n) for n in ("sign", "int", "frac", "exp"))
    frac = pc.fill_null(frac, "")
    digits = pc.binary_join_element_wise(whole, frac, "")
    # where the decimal point goes, counted from the left of ``digits``
    point = pc.add(pc.cast(pc.utf8_length(whole), pa.int64()), pc.cast(exp, pa.int64()))
    out = text
    for p in pc.unique(pc.drop_null(point)).to_pylist():  # a few distinct positions
        rows = pc.fill_null(pc.and_(sci, pc.equal(point, p)), False)
        if p <= 0:
            number = pc.binary_join_element_wise("0." + "0" * -p, digits, "")
        else:
            padded = pc.utf8_rpad(digits, width=p, padding="0")
            head = pc.utf8_slice_codeunits(padded, 0, p)
            tail = pc.utf8_slice_codeunits(padded, p)
            number = pc.binary_join_element_wise(head, tail, ".")
        out = pc.if_else(rows, pc.binary_join_element_wise(sign, number, ""), out)
    return out


def split_number(text: pa.Array) -> NumberParts:
    """Sign, digits and fraction of each value ("1,234.50" -> "+", "1234", "50"; "0E-9" -> 0)."""
    text = expand_scientific(text)
    grouped = pc.match_substring_regex(text, _THOUSANDS)
    if pc.any(grouped).as_py():
        text = pc.if_else(grouped, pc.replace_substring(text, ",", ""), text)
    parts = pc.extract_regex(text, _NUMBER)
    sign, whole, frac = (pc.struct_field(parts, name) for name in ("sign", "int", "frac"))
    has_digits = pc.or_(pc.greater(pc.utf8_length(whole), 0), pc.greater(pc.utf8_length(frac), 0))
    ok = pc.and_(pc.is_valid(sign), has_digits)
    return NumberParts(sign, pc.utf8_ltrim(whole, "0"), frac, pc.fill_null(ok, False))


def _digits_to_int(digits: pa.Array, use: pa.Array) -> pa.Array:
    """int64 of digit strings where ``use`` (others 0); callers keep them within 18 digits."""
    safe = pc.if_else(pc.and_(use, pc.greater(pc.utf8_length(digits), 0)), digits, "0")
    return pc.cast(safe, pa.int64())


def parse_integer(text: pa.Array) -> tuple[pa.Array, Mask]:
    """Whole numbers ("12", "-3", "12.00") as int64; and the rows that are not one."""
    parts = split_number(text)
    whole = pc.equal(pc.utf8_length(pc.utf8_rtrim(parts.frac, "0")), 0)
    fits = pc.less_equal(pc.utf8_length(parts.int_digits), _MAX_DIGITS)
    good = pc.fill_null(pc.and_(pc.and_(parts.ok, whole), fits), False)
    values = _digits_to_int(parts.int_digits, good)
    values = pc.if_else(parts.negative, pc.negate(values), values)
    values = pc.if_else(good, values, pa.scalar(None, pa.int64()))
    return values, mask(pc.and_(pc.is_valid(text), pc.invert(good)))


def shift_decimal(text: pa.Array, places: pa.Array) -> tuple[pa.Array, Mask]:
    """Move each value's decimal point right by ``places`` on its text: exact, normalized.

    ("0.0075", 2) -> "0.75"; ("20.00", 0) -> "20"; ("-0", 0) -> "0". Returns the bad rows too.
    """
    parts = split_number(text)
    out = pa.nulls(len(text), pa.string())
    for p in pc.unique(pc.drop_null(places)).to_pylist():  # a few distinct exponents
        rows = pc.fill_null(pc.and_(parts.ok, pc.equal(places, p)), False)
        padded = pc.utf8_rpad(parts.frac, width=p, padding="0")
        head = pc.binary_join_element_wise(
            parts.int_digits, pc.utf8_slice_codeunits(padded, 0, p), ""
        )
        head = pc.utf8_ltrim(head, "0")
        head = pc.if_else(pc.equal(head, ""), "0", head)
        tail = pc.utf8_rtrim(pc.utf8_slice_codeunits(parts.frac, p), "0")
        number = pc.if_else(pc.equal(tail, ""), head, pc.binary_join_element_wise(head, tail, "."))
        minus = pc.and_(parts.negative, pc.not_equal(number, "0"))
        number = pc.if_else(minus, pc.binary_join_element_wise("-", number, ""), number)
        out = pc.if_else(rows, number, out)
    return out, mask(pc.and_(pc.is_valid(text), pc.invert(parts.ok)))


@dataclass(frozen=True)
class AmountParse:
    """Minor units of major-unit amounts, and the rows that failed by reason."""

    values: pa.Array
    not_a_number: Mask
    unknown_currency: Mask
    too_many_decimals: Mask
    out_of_range: Mask


def parse_major_units(text: pa.Array, exponents: pa.Array) -> AmountParse:
    """Major-unit text ("39.50") to integer minor units by each row's exponent, never rounded."""
    parts = split_number(text)
    present = pc.is_valid(text)
    usable = pc.and_(present, parts.ok)
    frac = pc.utf8_rtrim(parts.frac, "0")
    decimals = pc.cast(pc.utf8_length(frac), pa.int64())
    known = pc.is_valid(exponents)
    too_many = pc.fill_null(pc.and_(pc.and_(usable, known), pc.greater(decimals, exponents)), False)
    width = pc.add(pc.cast(pc.utf8_length(parts.int_digits), pa.int64()), exponents)
    fits = pc.fill_null(pc.less_equal(width, _MAX_DIGITS), False)
    candidate = pc.and_(pc.and_(usable, known), pc.invert(too_many))
    good = pc.fill_null(pc.and_(candidate, fits), False)
    exp = pc.if_else(good, exponents, 0)
    whole = pc.multiply(_digits_to_int(parts.int_digits, good), pc.power(10, exp))
    shift = pc.if_else(good, pc.subtract(exp, decimals), 0)
    cents = pc.multiply(_digits_to_int(frac, good), pc.power(10, shift))
    minor = pc.add(whole, cents)
    minor = pc.if_else(parts.negative, pc.negate(minor), minor)
    return AmountParse(
        values=pc.if_else(good, minor, pa.scalar(None, pa.int64())),
        not_a_number=mask(pc.and_(present, pc.invert(parts.ok))),
        unknown_currency=mask(pc.and_(usable, pc.invert(known))),
        too_many_decimals=mask(too_many),
        out_of_range=mask(pc.and_(candidate, pc.invert(fits))),
    )


def parse_bool(text: pa.Array) -> tuple[pa.Array, Mask]:
    """Yes/no values (1/0, true/false, t/f, yes/no, y/n, any case) and the rows that are not."""
    lower = pc.utf8_lower(text)
    yes = pc.is_in(lower, value_set=pa.array(_TRUE))
    no = pc.is_in(lower, value_set=pa.array(_FALSE))
    none = pa.scalar(None, pa.bool_())
    values = pc.if_else(yes, True, pc.if_else(no, False, none))
    return values, mask(pc.and_(pc.is_valid(text), pc.invert(pc.or_(yes, no))))


def _cast_or_pandas(text: pa.Array, utc: bool) -> pa.Array:
    """ISO-8601 text to timestamps: Arrow's parser, or pandas' for what Arrow refuses."""
    target = TS_UTC if utc else pa.timestamp("us")
    try:
        return pc.cast(text, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = pd.Series(text.to_pandas(), dtype="string")
        parsed = pd.to_datetime(series, format="ISO8601", utc=utc, errors="coerce")
        unit = pd.api.types.pandas_dtype("datetime64[us, UTC]" if utc else "datetime64[us]")
        return pa.array(parsed.astype(unit), type=target, from_pandas=True)


@dataclass(frozen=True)
class TimestampParse:
    """UTC timestamps, and the rows that failed by reason."""

    values: pa.Array
    not_a_timestamp: Mask
    naive: Mask  # only filled when naive values are refused
    not_local: Mask  # naive local times that do not exist or are ambiguous


def localize(naive: pa.Array, timezone: str) -> pa.Array:
    """Naive local timestamps in ``timezone`` to UTC; null where the local time is ambiguous."""
    if timezone == "UTC":
        return pc.assume_timezone(naive, "UTC")
    try:
        local = pc.assume_timezone(naive, timezone, ambiguous="raise", nonexistent="raise")
        return local.cast(TS_UTC)  # the same instants, labelled UTC
    except pa.ArrowInvalid:  # DST gaps and overlaps: resolved by pandas, ambiguous -> NaT
        series = pd.Series(naive.to_pandas(), dtype="datetime64[us]")
        local = series.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        return pa.array(local.dt.tz_convert("UTC"), type=TS_UTC, from_pandas=True)


def zone_names(zones: pd.Series | None, default: str, n: int) -> tuple[np.ndarray, Mask]:
    """Each row's IANA zone name (``default`` where missing), and rows whose zone is unknown.

    Names are checked with :mod:`zoneinfo` (the Python package's own data, never the
    database's time-zone tables); an unknown name falls back to ``default`` and is flagged.
    """
    if zones is None:
        return np.full(n, default, dtype=object), np.zeros(n, dtype=bool)
    names = pd.Series(zones, copy=False).astype("string").str.strip()
    names = names.mask(names == "").fillna(default)
    bad = np.zeros(n, dtype=bool)
    for name in names.unique():
        try:
            ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            bad |= (names == name).to_numpy(dtype=bool)
    values = names.to_numpy(dtype=object)
    values[bad] = default
    return values, bad


def localize_zones(naive: pa.Array, zones: np.ndarray) -> pa.Array:
    """Naive local timestamps to UTC, each in its own row's zone (one pass per distinct zone)."""
    distinct = pd.unique(zones)
    if len(distinct) == 1:
        return localize(naive, str(distinct[0]))
    out = pa.nulls(len(naive), TS_UTC)
    for zone in distinct:
        rows = pa.array(zones == zone)
        out = pc.if_else(rows, localize(naive, str(zone)), out)
    return out


def parse_timestamp(
    text: pa.Array, timezone: str | np.ndarray, *, refuse_naive: bool
) -> TimestampParse:
    """ISO-8601 text to UTC; naive values take ``timezone`` (or each row's zone) unless refused."""
    # ISO-8601 is digits and punctuation plus T and Z: upper-case them, drop a space before Z.
    text = pc.replace_substring_regex(pc.utf8_upper(text), r"\s+(Z|[+-]\d{2}(?::?\d{2})?)$", r"\1")
    zoned = mask(pc.match_substring_regex(text, _ZONED))
    naive = mask(pc.match_substring_regex(text, NAIVE))
    present = mask(pc.is_valid(text))
    out = pa.nulls(len(text), TS_UTC)
    if zoned.any():
        out = _cast_or_pandas(pc.if_else(zoned, text, _NULL_TEXT), utc=True)
    bad_local = np.zeros(len(text), dtype=bool)
    if naive.any() and not refuse_naive:
        local = _cast_or_pandas(pc.if_else(naive, text, _NULL_TEXT), utc=False)
        if isinstance(timezone, str):
            as_utc = localize(local, timezone)
        else:
            as_utc = localize_zones(local, timezone)
        bad_local = naive & mask(pc.is_null(as_utc)) & mask(pc.is_valid(local))
        out = pc.if_else(pa.array(naive), as_utc, out)
    read = mask(pc.is_valid(out))
    refused = naive & refuse_naive
    unreadable = (zoned | naive) & ~read & ~refused & ~bad_local
    return TimestampParse(
        values=out,
        not_a_timestamp=present & (~(zoned | naive) | unreadable),
        naive=refused,
        not_local=bad_local,
    )


def epoch_to_timestamp(values: pa.Array, unit: str) -> tuple[pa.Array, Mask]:
    """Integer seconds (``s``) or milliseconds (``ms``) since 1970 to UTC; and out-of-range rows."""
    scale = 1000 if unit == "ms" else 1
    low, high = (bound * scale for bound in _EPOCH_SECONDS)
    ok = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
    micros = pc.multiply(pc.if_else(ok, values, 0), 1_000_000 // scale)
    stamps = pc.cast(pc.if_else(ok, micros, pa.scalar(None, pa.int64())), TS_UTC)
    return stamps, mask(pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(ok, False))))
