"""Row checks over the canonical tables: every failing row goes to quarantine with a reason.

Checks are boolean masks over whole tables (pandera-style failure cases, without pandera):
types, required values, vocabularies, non-negative quantities, currencies, period order,
duplicate keys, overlapping item histories, invoice arithmetic, and foreign keys with
cascade. A row is quarantined once, for the first rule it breaks; nothing is dropped, so
``rows_in == rows_out + quarantined`` for every table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.extract.conversions import DECIMAL_TEXT_COLUMNS, ConversionContext, to_canonical
from shadowbill.extract.quarantine import (
    REASON,
    REF,
    ROW,
    as_text,
    empty_quarantine,
    mark,
    row_json,
    split_staged,
    stage,
    text_or_empty,
)
from shadowbill.extract.value_parsers import zone_names
from shadowbill.money import is_currency
from shadowbill.snapshot.io import TableCounts
from shadowbill.snapshot.tables import TABLE_ORDER, TABLES, Table, empty_frame, pandas_dtype

# (start, end) column pairs whose end must come after their start; end may be open if optional.
PERIODS: dict[str, tuple[tuple[str, str], ...]] = {
    "subscriptions": (("current_period_start", "current_period_end"),),
    "subscription_items": (("valid_from", "valid_to"),),
    "discounts": (("starts_at", "ends_at"),),
    "usage": (("period_start", "period_end"),),
    "invoices": (("period_start", "period_end"),),
    "invoice_lines": (("period_start", "period_end"),),
}
# Line kinds that make up an invoice's subtotal (docs/billing-model.md).
CHARGE_KINDS = ("recurring", "usage", "proration", "one_off")
_OPEN_END = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Elsewhere:
    """What rows validated in other bucket groups tell one group, so its verdicts equal the whole's.

    Validating a snapshot bucket group by bucket group (streaming extraction) gives the verdicts
    of one validation of the whole, except where a rule spans customers; these facts, gathered
    over the whole source first, fill exactly those gaps.
    """

    # table -> its key columns plus ``copies``: every complete key that appears more than once
    # in the whole table, with its number of copies. Replaces local duplicate detection.
    duplicates: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    # item ids whose rows lie in more than one bucket: their history is judged on all rows...
    item_ids: pd.Series = field(default_factory=lambda: pd.Series([], dtype="string"))
    # ... with this verdict: item_id -> where its first overlapping row starts (overlaps only).
    item_overlaps: pd.Series = field(
        default_factory=lambda: pd.Series([], dtype="datetime64[us, UTC]")
    )
    # parent table -> its key column and ``_reason`` (NA: kept) for parent rows held in another
    # bucket that rows here name; they hold the key's first copy, so their reason comes first.
    parents: Mapping[str, pd.DataFrame] = field(default_factory=dict)


@dataclass
class ValidationResult:
    """The clean canonical tables, every quarantined row, and per-table counts."""

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    counts: dict[str, TableCounts]


def check_types(frame: pd.DataFrame, table: Table, *, naive: str = "quarantine") -> None:
    """Columns not yet in their canonical dtype are typed (and decimal text normalized).

    A cell that cannot be read quarantines its row (``wrong_type``, ``naive_timestamp``).
    """
    ctx = ConversionContext(naive=naive)
    untyped = [
        c
        for c in table.columns
        if str(frame[c.name].dtype) != pandas_dtype(c.type) or c.name in DECIMAL_TEXT_COLUMNS
    ]
    if not untyped:
        return
    as_given = {c.name: frame[c.name] for c in untyped}  # the columns as given, before typing
    reason = np.full(len(frame), None, dtype=object)
    detail = np.full(len(frame), None, dtype=object)
    for col in untyped:
        result = to_canonical(frame[col.name], col, ctx)
        first = result.failed.to_numpy() & pd.isna(reason)  # a row's first bad column names it
        if first.any():
            reason[first] = result.reason.to_numpy()[first]
            detail[first] = col.name + ": " + result.detail.to_numpy()[first].astype(str)
        frame[col.name] = result.values
    new = ~pd.isna(reason) & frame[REASON].isna().to_numpy()
    if new.any():
        index = frame.index
        mark(
            frame,
            table,
            pd.Series(new, index=index),
            pd.Series(reason, index=index, dtype="string"),
            pd.Series(detail, index=index, dtype="string"),
        )
        keep = new & frame[ROW].isna().to_numpy()
        rows = frame.loc[keep, table.column_names]
        rows = rows.assign(**{name: values[keep] for name, values in as_given.items()})
        frame.loc[keep, ROW] = row_json(rows)


def _said(name: str, tail: str) -> Callable[[pd.DataFrame], pd.Series]:
    """``<name> '<value>'<tail>`` for the marked rows."""
    return lambda rows: f"{name} " + text_or_empty(rows[name]) + tail


def check_rows(frame: pd.DataFrame, table: Table) -> None:
    """Required values, vocabularies, non-negative numbers, currencies and period order."""
    required = [c.name for c in table.columns if c.required]
    empty = frame[required].isna()
    if empty.to_numpy().any():
        first = empty.idxmax(axis=1).astype("string")  # the first empty required column
        mark(frame, table, empty.any(axis=1), "missing_value", "required " + first + " is empty")
    for col in table.columns:
        values = frame[col.name]
        if col.enum is not None:
            allowed = ", ".join(col.enum)
            mark(
                frame,
                table,
                values.notna() & ~values.isin(col.enum),
                "invalid_enum",
                _said(col.name, f" is not one of {allowed}"),
            )
        if col.non_negative:
            mark(
                frame,
                table,
                values < 0,
                "negative_value",
                _said(col.name, " is negative"),
            )
    if "currency" in table.column_names:
        codes = frame["currency"]
        known = [c for c in codes.dropna().unique() if is_currency(c)]
        mark(
            frame,
            table,
            codes.notna() & ~codes.isin(known),
            "unknown_currency",
            _said("currency", " is not an ISO 4217 code"),
        )
    if "timezone" in table.column_names:
        zones = frame["timezone"]
        _, unknown = zone_names(zones, "UTC", len(frame))
        mark(
            frame,
            table,
            pd.Series(unknown & zones.notna().to_numpy(), index=frame.index),
            "wrong_type",
            _said("timezone", " is not an IANA time zone name (e.g. America/Los_Angeles)"),
        )
    for start, end in PERIODS.get(table.name, ()):
        mark(
            frame,
            table,
            frame[start].notna() & frame[end].notna() & (frame[end] <= frame[start]),
            "period_out_of_order",
            _said(end, f" is not after {start}"),
        )


def check_duplicates(frame: pd.DataFrame, table: Table, known: pd.DataFrame | None = None) -> None:
    """Every copy of a key that appears more than once is quarantined (no copy silently wins).

    ``known`` (key columns plus ``copies``) lists the duplicated keys of the whole table when
    ``frame`` holds only part of it; it then replaces looking for duplicates within ``frame``.
    """
    keys = list(table.key)
    if not keys or frame.empty:
        return
    if known is not None:
        _mark_known_duplicates(frame, table, known)
        return
    complete = frame[keys].notna().all(axis=1)
    dup = frame.duplicated(subset=keys, keep=False) & complete
    if not dup.any():
        return
    sizes = frame.loc[dup].groupby(keys, dropna=False)[keys[0]].transform("size")
    _mark_duplicates(frame, table, dup, sizes)


def _mark_known_duplicates(frame: pd.DataFrame, table: Table, known: pd.DataFrame) -> None:
    """Quarantine the rows whose key is one of the ``known`` duplicated keys, with its count."""
    keys = list(table.key)
    if known.empty:
        return
    maybe = _member_of(frame[keys[0]], known[keys[0]])  # cheap first cut on one column
    if not maybe.any():
        return
    rows = frame.loc[maybe, keys]
    # known keys are unique, so a left merge keeps the rows and their order
    counted = rows.merge(known[[*keys, "copies"]], on=keys, how="left")
    sizes = pd.Series(counted["copies"].to_numpy(), index=rows.index).dropna()
    if sizes.empty:
        return
    dup = pd.Series(frame.index.isin(sizes.index), index=frame.index)
    _mark_duplicates(frame, table, dup, sizes.astype("int64"))


def _mark_duplicates(frame: pd.DataFrame, table: Table, dup: pd.Series, sizes: pd.Series) -> None:
    """Mark the copies of duplicated keys, saying how many copies each key has."""
    text = ("key appears " + sizes.astype("string") + " times; every copy is quarantined").astype(
        "string"
    )
    mark(frame, table, dup, "duplicate_key", text.reindex(frame.index))


def item_overlaps(frame: pd.DataFrame) -> pd.Series:
    """item_id -> where its first overlapping validity row starts, for items whose live rows overlap."""
    alive = frame[REASON].isna() & frame["item_id"].notna() & frame["valid_from"].notna()
    rows = frame.loc[alive, ["item_id", "valid_from", "valid_to"]].sort_values(
        ["item_id", "valid_from"], kind="stable"
    )
    if rows.empty:
        return rows.set_index("item_id")["valid_from"]
    start = rows["valid_from"].astype("int64")
    end = _ends(rows["valid_to"])
    reach = end.groupby(rows["item_id"]).cummax().groupby(rows["item_id"]).shift()
    overlap = (start < reach).fillna(False)
    return rows.loc[overlap].drop_duplicates("item_id").set_index("item_id")["valid_from"]


def item_history_verdict(items: pd.DataFrame, known: pd.DataFrame | None = None) -> pd.Series:
    """:func:`item_overlaps` of staged, typed item rows as whole validation finds them.

    Row checks and duplicate keys (``known``: the whole table's) decide which rows are live
    first, as they do before histories are checked; ``items`` itself is left unmarked.
    """
    frame = items.copy()
    table = TABLES["subscription_items"]
    check_rows(frame, table)
    check_duplicates(frame, table, known)
    return item_overlaps(frame)


def check_item_histories(
    frame: pd.DataFrame, table: Table, elsewhere: Elsewhere | None = None
) -> None:
    """Rows of one item_id must not overlap in validity; an item with overlaps is quarantined whole.

    Items listed in ``elsewhere.item_ids`` have rows outside ``frame``: their verdict is
    ``elsewhere.item_overlaps``, found over all their rows.
    """
    if elsewhere is not None and len(elsewhere.item_ids):
        spanning = _member_of(frame["item_id"], elsewhere.item_ids)
        first = item_overlaps(frame.loc[~spanning])
        outside = elsewhere.item_overlaps
        if len(outside):
            first = outside if first.empty else pd.concat([first, outside])
    else:
        first = item_overlaps(frame)
    if first.empty:
        return
    bad_items = frame["item_id"].isin(first.index)
    at = as_text(first)
    mark(
        frame,
        table,
        bad_items,
        "overlapping_history",
        lambda rows: (
            "validity rows of item "
            + text_or_empty(rows["item_id"])
            + " overlap (the row from "
            + rows["item_id"].map(at).astype("string")
            + " starts before an earlier row ends); the item's whole history is quarantined"
        ),
    )


def _ends(valid_to: pd.Series) -> pd.Series:
    """Validity ends as int64 microseconds; an open end is the largest value."""
    ends = pd.Series(_OPEN_END, index=valid_to.index, dtype="int64")
    known = valid_to.notna()
    ends[known] = valid_to[known].astype("int64")
    return ends


def check_invoice_totals(frame: pd.DataFrame, table: Table) -> None:
    """An invoice's total must be subtotal - discount + tax."""
    expected = frame["subtotal"] - frame["discount"] + frame["tax"]
    mark(
        frame,
        table,
        (frame["total"] != expected).fillna(False),
        "invoice_total_mismatch",
        lambda r: (
            "total "
            + as_text(r["total"])
            + " is not subtotal "
            + as_text(r["subtotal"])
            + " - discount "
            + as_text(r["discount"])
            + " + tax "
            + as_text(r["tax"])
            + " = "
            + as_text(r["subtotal"] - r["discount"] + r["tax"])
        ),
    )


def check_invoice_lines(invoices: pd.DataFrame, lines: pd.DataFrame) -> int:
    """Invoices whose kept lines are incomplete or do not sum to the subtotal: invoice and lines.

    Returns how many rows were newly quarantined.
    """
    inv_table, line_table = TABLES["invoices"], TABLES["invoice_lines"]
    kept = lines[REASON].isna()
    charge = kept & lines["kind"].isin(CHARGE_KINDS)
    sums = lines.loc[charge].groupby("invoice_id")["amount"].sum()
    dropped = lines.loc[~kept & lines["invoice_id"].notna()].groupby("invoice_id").size()
    alive = invoices[REASON].isna()
    got = invoices["invoice_id"].map(sums).astype("Int64").fillna(0)
    lost = invoices["invoice_id"].map(dropped).astype("Int64").fillna(0)
    bad = alive & ((got != invoices["subtotal"]) | (lost > 0)).fillna(False)
    if not bad.any():
        return 0
    why = (
        "its recurring/usage/proration/one_off lines sum to "
        + as_text(got[bad])
        + " but subtotal is "
        + as_text(invoices.loc[bad, "subtotal"])
    ).where(lost[bad] == 0, as_text(lost[bad]) + " of its lines are quarantined")
    why = why.astype("string").reindex(invoices.index)
    marked = mark(invoices, inv_table, bad, "invoice_lines_mismatch", why)
    bad_ids = invoices.loc[bad, ["invoice_id"]].assign(why=why[bad]).drop_duplicates("invoice_id")
    per_line = lines["invoice_id"].map(bad_ids.set_index("invoice_id")["why"]).astype("string")
    marked += mark(
        lines,
        line_table,
        per_line.notna(),
        "invoice_lines_mismatch",
        lambda rows: "invoice " + text_or_empty(rows["invoice_id"]) + ": " + per_line[rows.index],
    )
    return marked


def _member_of(values: pd.Series, allowed: pd.Series) -> pd.Series:
    """``values.isin(allowed)`` for text columns, hashed in Arrow (fast on millions of keys)."""
    as_arrow = pa.array(values.astype("string"), type=pa.string(), from_pandas=True)
    keys = pa.array(allowed.astype("string"), type=pa.string(), from_pandas=True)
    found = pc.is_in(as_arrow, value_set=keys)
    return pd.Series(pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=values.index)


def cascade_foreign_keys(
    frames: Mapping[str, pd.DataFrame], elsewhere: Elsewhere | None = None
) -> int:
    """Rows naming a missing or quarantined parent are quarantined, parents first; returns count.

    ``elsewhere.parents`` adds parent rows held outside ``frames`` (their first copies).
    """
    marked = 0
    outside = elsewhere.parents if elsewhere is not None else {}
    for name in TABLE_ORDER:
        table, frame = TABLES[name], frames[name]
        for fk in table.foreign_keys:
            parent = frames[fk.table]
            pkey = TABLES[fk.table].key[0]
            values = frame[fk.column]
            alive = parent.loc[parent[REASON].isna(), pkey]
            dead = parent.loc[parent[REASON].notna() & parent[pkey].notna(), [pkey, REASON]]
            more = outside.get(fk.table)
            if more is not None and len(more):
                alive = pd.concat([alive, more.loc[more[REASON].isna(), pkey]])
                dead = pd.concat([more.loc[more[REASON].notna(), [pkey, REASON]], dead])
            orphan = values.notna() & ~_member_of(values, alive)
            orphan = orphan & frame[REASON].isna()
            if not orphan.any():
                continue
            reasons = dead.drop_duplicates(pkey).set_index(pkey)[REASON]
            why = pd.Series(pd.NA, index=frame.index, dtype="string")
            why[orphan] = values[orphan].map(reasons).astype("string")
            detail = pd.Series(pd.NA, index=frame.index, dtype="string")
            detail[orphan] = (
                f"{fk.column} "
                + text_or_empty(values[orphan])
                + f" names a {fk.table} row that is quarantined ("
                + why[orphan]
                + ")"
            )
            marked += mark(frame, table, orphan & why.notna(), "parent_quarantined", detail)
            marked += mark(
                frame,
                table,
                orphan,
                "dangling_foreign_key",
                _said(fk.column, f" names no row of {fk.table}"),
            )
    return marked


@functools.cache
def _empty(name: str) -> pd.DataFrame:
    """The empty frame of a canonical table (cached: building it is not free)."""
    return empty_frame(TABLES[name])


def in_key_order(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Rows in key order, so the same data gives the same files whatever the source's order."""
    keys = list(table.key)
    if len(keys) == 1 and frame[keys[0]].is_monotonic_increasing:
        return frame  # already ordered (a source read in key order): no copy
    return frame.sort_values(keys, kind="stable", ignore_index=True)


def natural_order(rejected: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows by source reference, "row 9" before "row 10" (shorter first, then text)."""
    order = rejected.assign(_len=rejected["source_ref"].str.len())
    order = order.sort_values(["_len", "source_ref", "detail"], kind="stable")
    return order.drop(columns="_len")


def validate_staged(
    staged: Mapping[str, pd.DataFrame], *, typed: bool = False, elsewhere: Elsewhere | None = None
) -> dict[str, pd.DataFrame]:
    """Run every check over the canonical frames; returns them staged, each failing row marked.

    Plain frames are copied; staged frames (with the bookkeeping columns) are marked in place.
    ``typed``: the columns were already typed (``check_types`` ran on them, chunk by chunk).
    ``elsewhere``: the frames hold some bucket groups of a larger source (see :class:`Elsewhere`).
    """
    frames: dict[str, pd.DataFrame] = {}
    known = elsewhere.duplicates if elsewhere is not None else {}
    for name, table in TABLES.items():
        given = staged.get(name)
        frame = given if given is not None else _empty(name).copy()
        frame = frame if REF in frame.columns else stage(frame, table)  # staged: updated in place
        if not typed:
            check_types(frame, table)
        check_rows(frame, table)
        check_duplicates(frame, table, known.get(name))
        frames[name] = frame
    check_item_histories(frames["subscription_items"], TABLES["subscription_items"], elsewhere)
    check_invoice_totals(frames["invoices"], TABLES["invoices"])
    while True:  # parents quarantine children; bad lines quarantine their invoice; until stable
        changed = cascade_foreign_keys(frames, elsewhere)
        changed += check_invoice_lines(frames["invoices"], frames["invoice_lines"])
        if not changed:
            break
    return frames


def validate_tables(
    staged: Mapping[str, pd.DataFrame], *, typed: bool = False, elsewhere: Elsewhere | None = None
) -> ValidationResult:
    """Run every check over the (staged or plain) canonical frames; split kept and quarantined.

    Plain frames are copied; staged frames (with the bookkeeping columns) are marked in place.
    """
    frames = validate_staged(staged, typed=typed, elsewhere=elsewhere)
    tables: dict[str, pd.DataFrame] = {}
    parts = [empty_quarantine()]
    counts: dict[str, TableCounts] = {}
    for name, table in TABLES.items():
        clean, rejected = split_staged(frames[name], table)
        tables[name] = in_key_order(clean, table)
        if len(rejected):
            parts.append(natural_order(rejected))
        counts[name] = TableCounts(len(frames[name]), len(clean), len(rejected))
    quarantine = pd.concat([p for p in parts if len(p)] or parts, ignore_index=True)
    return ValidationResult(tables, quarantine.astype("string"), counts)
