"""Source rows shaped before conversion: rows excluded on purpose (counted) and event logs folded.

Both work on the source's own columns, whole columns at a time. Exclusion conditions are
data (column -> allowed values), matched as text; nothing from the spec is evaluated.
Folding turns an event log (key, effective time, event fields) into validity rows with
``fold_valid_from``/``fold_valid_to`` by one sort and a grouped shift, not a loop per row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.errors import ExtractSpecError
from shadowbill.extract import value_parsers as vp
from shadowbill.extract.quarantine import as_text
from shadowbill.extract.spec import FOLD_FROM, FOLD_TO, ExcludeSpec, FoldSpec

Mask = npt.NDArray[np.bool_]
SAME_INSTANT = "fold: replaced by a later event of the same key at the same time"


def matches(frame: pd.DataFrame, when: Mapping[str, Sequence[str | None]]) -> Mask:
    """Rows where every named column holds one of its listed values (text; None = missing)."""
    hit = np.ones(len(frame), dtype=bool)
    for column, values in when.items():
        text = vp.text_array(as_text(frame[column]))
        listed = [v for v in values if v is not None]
        found = vp.mask(pc.is_in(text, value_set=pa.array(listed, pa.string())))
        if None in values:
            found |= vp.mask(pc.is_null(text))
        hit &= found
    return hit


def check_columns(frame: pd.DataFrame, names: Sequence[str], where: str) -> None:
    """Every column a rule names is in the source (else a one-line spec error)."""
    missing = [n for n in names if n not in frame.columns]
    if missing:
        shown = ", ".join(map(str, frame.columns[:30]))
        raise ExtractSpecError(
            f"{where}: column {missing[0]!r} is not in the source (it has: {shown})"
        )


def exclude_rows(
    frame: pd.DataFrame, rules: Sequence[ExcludeSpec]
) -> tuple[pd.DataFrame, Counter[str]]:
    """The rows no rule excludes, and how many each reason took (a row counts for its first rule)."""
    counted: Counter[str] = Counter()
    if not rules or frame.empty:
        return frame, counted
    left = np.zeros(len(frame), dtype=bool)
    for rule in rules:
        hit = matches(frame, rule.when) & ~left
        if hit.any():
            counted[rule.reason] += int(hit.sum())
            left |= hit
    return (frame.loc[~left] if left.any() else frame), counted


def fold_events(frame: pd.DataFrame, fold: FoldSpec) -> tuple[pd.DataFrame, Counter[str]]:
    """Events in force from their time until the next event of the same key; ends only close.

    Returns the validity rows (source columns plus ``fold_valid_from``/``fold_valid_to``) and
    the events that became no row, by reason.
    """
    counted: Counter[str] = Counter()
    order = [fold.key, fold.at, *fold.order_by]
    rows = frame.sort_values(order, kind="stable", na_position="last")
    rows = rows.assign(**{FOLD_FROM: rows[fold.at]})
    rows[FOLD_TO] = rows.groupby(fold.key, sort=False, dropna=False)[fold.at].shift(-1)
    ends = matches(rows, fold.ends) if fold.ends else np.zeros(len(rows), dtype=bool)
    if ends.any():
        counted["fold: an ending event closes the row before it"] += int(ends.sum())
    same = (rows[FOLD_TO] == rows[FOLD_FROM]).fillna(False).to_numpy(dtype=bool) & ~ends
    if same.any():
        counted[SAME_INSTANT] += int(same.sum())
    return rows.loc[~(ends | same)].reset_index(drop=True), counted
