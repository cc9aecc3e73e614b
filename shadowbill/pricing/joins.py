"""Vectorized joins and sums over rows grouped by subscription or invoice (numpy only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def group_bounds(groups_sorted: IntArray, n_groups: int) -> tuple[IntArray, IntArray]:
    """(first row, row count) of each group in an array sorted by group."""
    counts = np.bincount(np.asarray(groups_sorted, dtype=np.int64), minlength=n_groups)
    first = np.cumsum(counts) - counts
    return first.astype(np.int64), counts.astype(np.int64)


def cross_by_group(
    left_group: IntArray, right_groups_sorted: IntArray, n_groups: int
) -> tuple[IntArray, IntArray]:
    """All (left row, right row) pairs of the same group: the rows of an inner join on group.

    ``right_groups_sorted`` must be sorted; pairs come out in left order, then right order.
    """
    first, counts = group_bounds(right_groups_sorted, n_groups)
    left_group = np.asarray(left_group, dtype=np.int64)
    rep = counts[left_group]
    total = int(rep.sum())
    left = np.repeat(np.arange(len(left_group), dtype=np.int64), rep)
    offsets = np.cumsum(rep) - rep
    right = np.repeat(first[left_group] - offsets, rep) + np.arange(total, dtype=np.int64)
    return left, right


class SumOverflow(ArithmeticError):
    """A sum per group that does not fit in int64; ``groups`` are the groups concerned."""

    def __init__(self, groups: IntArray) -> None:
        super().__init__(f"{len(groups)} sum(s) outside int64")
        self.groups = groups


# Below this total magnitude no partial sum of a group can leave int64 (2^63), even with
# the float64 rounding of the magnitude itself; above it the group is summed exactly.
_SAFE_MAGNITUDE = float(2**62)
_INT64 = np.iinfo(np.int64)


def sum_by(groups: IntArray, values: IntArray, n_groups: int) -> IntArray:
    """Exact int64 sum of ``values`` per group; raises SumOverflow rather than wrap around.

    Checked vectorized: the float64 sum of magnitudes per group (``bincount``) bounds every
    partial sum; only a group at or above 2^62 of magnitude is summed again exactly (in
    Python integers) and refused if its sum leaves int64.
    """
    g = np.asarray(groups, dtype=np.int64)
    v = np.asarray(values, dtype=np.int64)
    out = np.zeros(n_groups, dtype=np.int64)
    np.add.at(out, g, v)
    magnitude = np.bincount(g, weights=np.abs(v.astype(np.float64)), minlength=n_groups)
    risky = np.flatnonzero(magnitude >= _SAFE_MAGNITUDE)
    if len(risky):
        exact = [sum(int(x) for x in v[g == group]) for group in risky]
        bad = [int(group) for group, s in zip(risky, exact, strict=True) if not _fits(s)]
        if bad:
            raise SumOverflow(np.asarray(bad, dtype=np.int64))
    return out


def _fits(value: int) -> bool:
    return int(_INT64.min) <= value <= int(_INT64.max)


def checked_add(a: IntArray, b: IntArray) -> IntArray:
    """``a + b`` element-wise in int64; raises SumOverflow (positions) rather than wrap."""
    x = np.asarray(a, dtype=np.int64)
    y = np.asarray(b, dtype=np.int64)
    with np.errstate(over="ignore"):
        out = x + y
    wrapped = ((x >= 0) == (y >= 0)) & ((out >= 0) != (x >= 0))
    if wrapped.any():
        raise SumOverflow(np.flatnonzero(wrapped).astype(np.int64))
    return out


def last_in_group(groups: IntArray, order: IntArray) -> IntArray:
    """Index of the row with the largest ``order`` in each group present (ties: later row)."""
    idx = np.lexsort((np.arange(len(groups)), order, groups))
    g = np.asarray(groups)[idx]
    is_last = np.ones(len(idx), dtype=bool)
    is_last[:-1] = g[1:] != g[:-1]
    return np.asarray(idx[is_last], dtype=np.int64)


def rank_in_group(groups: IntArray, order: IntArray) -> IntArray:
    """0-based rank of each row within its group by ``order`` (ties by row position)."""
    n = len(groups)
    idx = np.lexsort((np.arange(n), order, groups))
    g = np.asarray(groups)[idx]
    start = np.ones(n, dtype=bool)
    start[1:] = g[1:] != g[:-1]
    first_pos = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    ranks = np.empty(n, dtype=np.int64)
    ranks[idx] = np.arange(n) - first_pos
    return ranks


def cumsum_by(groups_sorted: IntArray, values: IntArray) -> IntArray:
    """Running sum of ``values`` within each group of an array sorted by group."""
    v = np.asarray(values, dtype=np.int64)
    total = np.cumsum(v)
    g = np.asarray(groups_sorted)
    start = np.ones(len(g), dtype=bool)
    start[1:] = g[1:] != g[:-1]
    before = np.where(start, total - v, 0)
    base = np.maximum.accumulate(np.where(start, np.arange(len(g)), 0))
    return np.asarray(total - before[base], dtype=np.int64)
