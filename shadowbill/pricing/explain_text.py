"""Vectorized text for invoice lines: counts, amounts, dates and durations as Arrow strings.

The explanations ("12 x 99.00", "prorated 11d 4h / 31d") are built for millions of lines
at once with Arrow compute kernels; no Python loop touches a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.pricing.periods import civil_from_days

IntArray = npt.NDArray[np.int64]
Text = Any  # an Arrow string array or scalar, or a str literal

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000
SECOND_US = 1_000_000


def _strings(values: IntArray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.large_string())


def join(*parts: Text) -> pa.Array:
    """Concatenate string arrays and literals element-wise."""
    items = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*items, pa.scalar("", pa.large_string()))


def choose(mask: npt.NDArray[np.bool_], if_true: Text, if_false: Text) -> pa.Array:
    """Element-wise pick between two string arrays (or literals) by a boolean mask."""
    a = pa.scalar(if_true, pa.large_string()) if isinstance(if_true, str) else if_true
    b = pa.scalar(if_false, pa.large_string()) if isinstance(if_false, str) else if_false
    return pc.if_else(pa.array(mask, pa.bool_()), a, b)


_POW10 = np.array([10**i for i in range(19)], dtype=np.int64)


def _digit_count(values: IntArray) -> IntArray:
    """Decimal digits of non-negative integers (1 for zero)."""
    return np.asarray(np.searchsorted(_POW10, values, side="right"), dtype=np.int64).clip(1)


_PAD = 0


def _render(
    whole: IntArray, frac: IntArray, places: IntArray, negative: npt.NDArray[np.bool_]
) -> pa.Array:
    """Write "-1,234.56" style numbers straight into an Arrow string buffer.

    ``whole`` and ``frac`` are non-negative; ``frac`` has ``places`` digits (0: no point).
    Each number gets a fixed-width row of characters padded with NUL, filled one column
    per pass over all numbers at once; the padding is then squeezed out.
    """
    n = len(whole)
    if not n:
        return pa.array([], pa.large_string())
    digits = _digit_count(whole)
    int_len = digits + (digits - 1) // 3
    width_int = int(int_len.max())
    width_frac = int(places.max())
    small = bool(whole.max() < 2**31)
    rest = whole.astype(np.int32 if small else np.int64)
    int_cols: list[npt.NDArray[np.uint8]] = []
    for r in range(width_int):  # integer part, right to left
        if (r + 1) % 4 == 0:
            char = np.full(n, ord(","), dtype=np.uint8)
        else:
            rest, digit = np.divmod(rest, 10)
            char = (digit + 48).astype(np.uint8)
        int_cols.append(np.where(r < int_len, char, np.uint8(_PAD)))
    cols = [np.where(negative, np.uint8(ord("-")), np.uint8(_PAD)), *int_cols[::-1]]
    if width_frac:
        cols.append(np.where(places > 0, np.uint8(ord(".")), np.uint8(_PAD)))
        for j in range(width_frac):  # fraction digits, left to right
            k = np.clip(places - 1 - j, 0, None)
            char = (48 + (frac // _POW10[k]) % 10).astype(np.uint8)
            cols.append(np.where(j < places, char, np.uint8(_PAD)))
    grid = np.stack(cols, axis=1)  # (numbers, characters)
    data = grid[grid != _PAD]
    length = negative.astype(np.int64) + int_len + np.where(places > 0, places + 1, 0)
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def counts(values: IntArray) -> pa.Array:
    """Integers with thousands separators: 1234567 -> "1,234,567"."""
    v = np.asarray(values, dtype=np.int64)
    zero = np.zeros(len(v), dtype=np.int64)
    return _render(np.abs(v), zero, zero, v < 0)


def majors(amounts: IntArray, exponents: IntArray) -> pa.Array:
    """Minor units as major units with separators: (123456, 2) -> "1,234.56"."""
    amounts = np.asarray(amounts, dtype=np.int64)
    exps = np.broadcast_to(np.asarray(exponents, dtype=np.int64), amounts.shape)
    scale = _POW10[exps]
    a = np.abs(amounts)
    return _render(a // scale, a % scale, exps, amounts < 0)


def durations(spans_us: IntArray) -> pa.Array:
    """Spans as "11d 4h 3m 2s", leaving out zero parts ("31d"; "0s" for nothing)."""
    s = np.asarray(spans_us, dtype=np.int64)
    parts = [
        (s // DAY_US, "d"),
        ((s % DAY_US) // HOUR_US, "h"),
        ((s % HOUR_US) // MINUTE_US, "m"),
        ((s % MINUTE_US) // SECOND_US, "s"),
    ]
    out: pa.Array = pa.array([""] * len(s), pa.large_string())
    for value, unit in parts:
        piece = join(_strings(value), unit)
        sep = choose(pc.equal(pc.utf8_length(out), 0).to_numpy(zero_copy_only=False), "", " ")
        out = choose(value > 0, join(out, sep, piece), out)
    empty = pc.equal(pc.utf8_length(out), 0).to_numpy(zero_copy_only=False)
    return choose(empty, "0s", out)


def dates(times_us: IntArray) -> pa.Array:
    """UTC dates as "12 Mar 2025"."""
    seconds = np.asarray(times_us, dtype=np.int64) // SECOND_US
    text = pc.strftime(pa.array(seconds, pa.timestamp("s", tz="UTC")), format="%d %b %Y")
    return text.cast(pa.large_string())


def repeat(text: str, n: int) -> pa.Array:
    """The same string n times."""
    return pa.array(np.full(n, text, dtype=object), pa.large_string())


def take(values: Sequence[object] | npt.NDArray[np.object_], index: IntArray) -> pa.Array:
    """``values[index]`` as an Arrow string array (values: a small table, e.g. per price)."""
    table = pa.array(np.asarray(values, dtype=object), pa.large_string())
    return table.take(pa.array(np.asarray(index, dtype=np.int64)))


def decimals(scaled: IntArray, places: int) -> pa.Array:
    """Scaled integers as plain decimals without trailing zeros: (1250, 2) -> "12.5"."""
    value = np.asarray(scaled, dtype=np.int64)
    p = np.full(len(value), places, dtype=np.int64)
    while True:
        drop = (p > 0) & (value % 10 == 0)
        if not drop.any():
            break
        value = np.where(drop, value // 10, value)
        p = np.where(drop, p - 1, p)
    return majors(value, p)


def timestamps_iso(times_us: IntArray) -> pa.Array:
    """UTC times as "2025-03-12T00:00:00Z" (the invoice key's format), built as bytes."""
    seconds = np.asarray(times_us, dtype=np.int64) // SECOND_US
    days = np.floor_divide(seconds, 86_400)
    tod = seconds - days * 86_400
    year, month, day = civil_from_days(days)
    n = len(seconds)
    rows = np.empty((20, n), dtype=np.uint8)  # one row per character, filled contiguously
    fields = (
        (0, year, 4),
        (5, month, 2),
        (8, day, 2),
        (11, tod // 3600, 2),
        (14, (tod % 3600) // 60, 2),
        (17, tod % 60, 2),
    )
    for col, value, width in fields:  # the six fields of the format
        for i in range(width):
            rows[col + width - 1 - i] = 48 + (value // 10**i) % 10
    for col, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "Z")):
        rows[col] = ord(char)
    data = np.ascontiguousarray(rows.T)
    offsets = np.arange(n + 1, dtype=np.int64) * 20
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
