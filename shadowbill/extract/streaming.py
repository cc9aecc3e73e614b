"""Validate a spilled source bucket group by bucket group and write a bucketed snapshot.

Stage one (:meth:`StreamingValidation.add`) types each chunk, routes its rows to customer
buckets and spills them; stage two (:meth:`StreamingValidation.finish`) loads a group of
buckets at a time, validates it, and writes the group's bucket files. Every row of a
customer is in one bucket, so the checks between tables hold within a group. The few
checks that can span customers get the facts of the whole source first (see
:class:`shadowbill.extract.validate.Elsewhere`): duplicate keys over the whole table, item
histories whose rows lie in several buckets, and invoices naming a subscription held in
another bucket. The snapshot is therefore the one validating everything at once would give.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shadowbill.errors import InputError
from shadowbill.extract.period_boundaries import boundary_warnings
from shadowbill.extract.quarantine import REASON, empty_quarantine, split_staged
from shadowbill.extract.spill import (
    BUCKET,
    SEQ,
    KeyLog,
    Router,
    TableSpill,
    plan_groups,
    spill_tables,
)
from shadowbill.extract.validate import (
    Elsewhere,
    check_types,
    in_key_order,
    item_history_verdict,
    validate_staged,
)
from shadowbill.snapshot.buckets import SHARED_TABLES
from shadowbill.snapshot.io import SnapshotWriter, TableCounts, to_arrow
from shadowbill.snapshot.tables import QUARANTINE, TABLE_ORDER, TABLES

_RANK = "_rank"

Advance = Callable[[int], None]


@dataclass(frozen=True)
class StreamedSnapshot:
    """What stage two wrote: counts per table and the whole quarantine (in snapshot order)."""

    counts: dict[str, TableCounts]
    quarantine: pd.DataFrame
    warnings: dict[str, int] = field(default_factory=dict)  # period_boundaries.WARNINGS


class StreamingValidation:
    """Collects staged chunks by bucket on disk, then validates and writes them group by group."""

    def __init__(self, work_dir: Path, *, group_rows: int) -> None:
        if group_rows <= 0:
            raise InputError(f"rows validated at once must be positive, got {group_rows}")
        self.work_dir = Path(work_dir)
        self.group_rows = group_rows
        self.spills: Mapping[str, TableSpill] = spill_tables(self.work_dir)
        self.router = Router()
        self.keys = KeyLog(self.work_dir / "keys", group_rows)
        self._shared: dict[str, list[pd.DataFrame]] = {name: [] for name in SHARED_TABLES}
        self._cross_refs: list[pd.Series] = []  # subscription ids invoices name across buckets

    def begin(self, name: str) -> None:
        """Start (or restart) reading one table: whatever was collected of it is dropped."""
        if name in SHARED_TABLES:
            self._shared[name] = []
            return
        self.spills[name].reset()
        self.router.reset(name)
        self.keys.reset(name)
        if name == "invoices":
            self._cross_refs = []

    def add(self, name: str, staged: pd.DataFrame) -> None:
        """Type one staged chunk of a table and spill it by bucket (tables in canonical order)."""
        table = TABLES[name]
        check_types(staged, table)
        if name in SHARED_TABLES:
            self._shared[name].append(staged)
            return
        buckets = self.router.buckets(name, staged)
        if name in ("subscriptions", "invoices"):
            self.router.remember(name, staged, buckets)
        if name == "invoices":
            self._note_cross_refs(staged, buckets)
        self.keys.add(name, staged, buckets)
        self.spills[name].append(staged, buckets)

    def _note_cross_refs(self, invoices: pd.DataFrame, buckets: npt.NDArray[np.int64]) -> None:
        """Subscriptions named by an invoice of another bucket (the invoice's customer differs)."""
        held, found = self.router.lookup("subscriptions", invoices["subscription_id"])
        elsewhere = found & (held != buckets)
        if elsewhere.any():
            self._cross_refs.append(invoices.loc[elsewhere, "subscription_id"])

    @property
    def rows_per_bucket(self) -> npt.NDArray[np.int64]:
        """Rows spilled per bucket, over all tables."""
        return np.sum([s.rows_per_bucket for s in self.spills.values()], axis=0)

    def finish(self, writer: SnapshotWriter, advance: Advance | None = None) -> StreamedSnapshot:
        """Validate group by group, write every bucket file, and return counts and quarantine.

        A group's files are written (Parquet encoding releases the GIL) while the next group
        is validated; at most one group waits to be written.
        """
        elsewhere = self._elsewhere()
        counts = {name: TableCounts(0, 0, 0) for name in TABLES}
        quarantine: list[pd.DataFrame] = []
        warnings: dict[str, int] = {}
        # Shared tables name no other table and no table names them: they are validated
        # whole, along with the first group.
        shared = {n: pd.concat(p, ignore_index=True) for n, p in self._shared.items() if p}
        names = [*self.spills, *SHARED_TABLES]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-writer") as pool:
            writing: Future[None] | None = None
            for group in plan_groups(self.rows_per_bucket, self.group_rows):
                frames = {name: spill.read(group) for name, spill in self.spills.items()}
                frames = validate_staged(frames | shared, typed=True, elsewhere=elsewhere)
                kept = _split(frames, names, counts, quarantine)
                # a customer's rows share a bucket: boundaries are judged within the group
                for name, n in boundary_warnings(_kept_frames(frames)).items():
                    warnings[name] = warnings.get(name, 0) + n
                shared, names, frames = {}, list(self.spills), {}
                if writing is not None:
                    writing.result()  # the previous group is written (or its error raised)
                writing = pool.submit(_write_kept, writer, kept)
                if advance is not None:
                    advance(len(group))
            if writing is not None:
                writing.result()
        return StreamedSnapshot(counts, _in_snapshot_order(quarantine), warnings)

    def _elsewhere(self) -> Elsewhere:
        """The facts of the whole source that checks spanning customers need in every group."""
        duplicates = self.keys.duplicates()
        item_ids = self.keys.spanning_items()
        overlaps = pd.Series([], dtype="datetime64[us, UTC]")
        if len(item_ids):
            overlaps = self._item_verdicts(item_ids, duplicates.get("subscription_items"))
        facts = Elsewhere(duplicates=duplicates, item_ids=item_ids, item_overlaps=overlaps)
        if self._cross_refs:
            named = pd.concat(self._cross_refs).dropna().unique()
            parents = {"subscriptions": self._subscription_verdicts(pd.Series(named), facts)}
            facts = Elsewhere(duplicates, item_ids, overlaps, parents)
        return facts

    def _item_verdicts(self, item_ids: pd.Series, known: pd.DataFrame | None) -> pd.Series:
        """Overlap verdicts for the items whose rows lie in several buckets, over all their rows."""
        spill = self.spills["subscription_items"]
        parts = []
        for group in plan_groups(spill.rows_per_bucket, self.group_rows):
            rows = spill.read(group)
            parts.append(rows[rows["item_id"].isin(item_ids)])
        items = pd.concat(parts, ignore_index=True).sort_values(SEQ, ignore_index=True)
        return item_history_verdict(items, known)

    def _subscription_verdicts(self, named: pd.Series, facts: Elsewhere) -> pd.DataFrame:
        """subscription_id and final reason (NA: kept) of the first copy of each named subscription.

        Only customers decide a subscription's fate besides its own row, and they share its
        bucket: validating customers and subscriptions of the first copy's group suffices.
        """
        home, found = self.router.lookup("subscriptions", named)
        named, home = named[found].reset_index(drop=True), home[found]
        spills = {n: self.spills[n] for n in ("customers", "subscriptions")}
        rows = np.sum([s.rows_per_bucket for s in spills.values()], axis=0)
        verdicts = []
        for group in plan_groups(rows, self.group_rows):
            here = named[(home >= group.start) & (home < group.stop)]
            if here.empty:
                continue
            frames = validate_staged(
                {n: s.read(group) for n, s in spills.items()}, typed=True, elsewhere=facts
            )
            subs = frames["subscriptions"]
            first = subs[subs["subscription_id"].isin(here)].drop_duplicates("subscription_id")
            verdicts.append(first[["subscription_id", REASON]])
        if not verdicts:
            return pd.DataFrame({"subscription_id": [], REASON: []}, dtype="string")
        return pd.concat(verdicts, ignore_index=True)

    def close(self) -> None:
        """Delete the spill."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _split(
    frames: Mapping[str, pd.DataFrame],
    names: list[str],
    counts: dict[str, TableCounts],
    quarantine: list[pd.DataFrame],
) -> dict[str, pa.Table]:
    """The kept rows of validated tables as Arrow, ready to write; counts and quarantine collected.

    Customer tables come sorted by bucket, then key, with a bucket column; the sort is
    stable, so rows with equal keys keep their source order, as in one piece.
    """
    kept: dict[str, pa.Table] = {}
    for name in names:
        table, frame = TABLES[name], frames[name]
        bad = frame[REASON].notna().to_numpy()
        clean, rejected = split_staged(frame, table)
        if name in SHARED_TABLES:
            kept[name] = to_arrow(in_key_order(clean, table), table)
        else:
            data = to_arrow(clean, table).append_column(
                BUCKET, pa.array(frame[BUCKET].to_numpy()[~bad])
            )
            keys = [(c, "ascending") for c in (BUCKET, *table.key)]
            kept[name] = data.take(pc.sort_indices(data, sort_keys=keys))
        if len(rejected):
            seq = frame[SEQ].to_numpy()[bad] if SEQ in frame else np.arange(len(rejected))
            quarantine.append(rejected.assign(**{_RANK: TABLE_ORDER.index(name), SEQ: seq}))
        c = counts[name]
        counts[name] = TableCounts(
            c.rows_in + len(frame), c.rows_out + len(clean), c.quarantined + len(rejected)
        )
    return kept


def _kept_frames(frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The rows of validated frames that are kept (no quarantine reason)."""
    names = ("customers", "subscriptions", "usage", "invoices")
    return {n: frames[n][frames[n][REASON].isna()] for n in names if n in frames}


def _write_kept(writer: SnapshotWriter, kept: Mapping[str, pa.Table]) -> None:
    """Write one group's kept rows: a file per bucket of each customer table, shared tables whole."""
    for name, data in kept.items():
        if name in SHARED_TABLES:
            writer.write_table(name, data)
            continue
        if data.num_rows == 0:
            continue
        held = data[BUCKET].to_numpy()
        rows = data.drop_columns([BUCKET])
        edges = np.flatnonzero(np.diff(held)) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [len(held)]])
        for start, end in zip(starts, ends, strict=True):
            writer.write_bucket(name, int(held[start]), rows.slice(int(start), int(end - start)))


def _in_snapshot_order(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Quarantine rows by table, then source reference as people count ("row 9" before "row 10").

    The order one validation of the whole gives: equal references keep their source order.
    """
    if not parts:
        return empty_quarantine()
    rows = pd.concat(parts, ignore_index=True)
    rows["_len"] = rows["source_ref"].str.len()
    rows = rows.sort_values([_RANK, "_len", "source_ref", "detail", SEQ], kind="stable")
    return rows[QUARANTINE.column_names].reset_index(drop=True).astype("string")
