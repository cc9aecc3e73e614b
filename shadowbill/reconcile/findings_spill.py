"""Findings kept on disk, so the whole estate's findings never sit in one process's memory.

Each partition writes its findings to an Arrow file in bucket order (then comparison A,
B per invoice, B per customer, each in findings order) and hands back only counts and
the findings the gate and the report need (comparison A and unexplained). The driver
then writes ``findings.parquet`` bucket by bucket, one row group per bucket, reading
each bucket's rows from the one partition that holds it: the file is the same bytes
whatever the partition count, and memory is bounded by a bucket. Partitions also write
their rows as CSV text, so the driver only stitches ``findings.csv`` together.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from shadowbill.csv_cells import neutralise_table
from shadowbill.pricing.explain_text import timestamps_iso
from shadowbill.reconcile.findings import empty_findings
from shadowbill.snapshot.partitions import BUCKETS, bucket_of

STAT_KEYS = ("comparison", "cause", "severity", "level")
# Columns of few distinct values, dictionary-encoded in findings.parquet. Ids and keys are
# nearly all distinct: encoding them as dictionaries tripled the write time at 17 M rows.
DICTIONARY_COLUMNS = (
    "comparison", "level", "currency", "cause", "severity", "price_id", "explanation",
)  # fmt: skip


@cache
def findings_schema() -> pa.Schema:
    """The Arrow schema of findings (from the pinned pandas columns, no index)."""
    return pa.Schema.from_pandas(empty_findings(), preserve_index=False)


@dataclass(frozen=True)
class Spill:
    """One partition's findings on disk: the file and where each bucket's rows start.

    ``csv`` holds the same rows as CSV text (no header), each bucket's bytes at
    ``csv_ranges[bucket]`` = (offset, length): the driver stitches findings.csv from them.
    """

    path: Path
    batches: dict[int, int]  # bucket -> the record batch holding its rows
    csv: Path | None = None
    csv_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class FindingStats:
    """Counts of findings per comparison, cause, severity, level and comparison x cause."""

    total: int = 0
    by: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in STAT_KEYS})
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def of(cls, findings: pd.DataFrame) -> FindingStats:
        """The counts of one findings frame."""
        stats = cls(total=len(findings))
        text = {k: findings[k].astype("string").fillna("") for k in STAT_KEYS}
        for key in STAT_KEYS:
            stats.by[key].update({str(k): int(v) for k, v in text[key].value_counts().items()})
        pairs = (text["comparison"] + "\x1f" + text["cause"]).value_counts()
        for joined, n in pairs.items():
            comparison, cause = str(joined).split("\x1f", 1)
            stats.pairs[(comparison, cause)] += int(n)
        return stats

    def add(self, other: FindingStats) -> FindingStats:
        """The counts of both (partitions are disjoint, so counts add)."""
        out = FindingStats(self.total + other.total)
        for key in STAT_KEYS:
            out.by[key] = self.by[key] + other.by[key]
        out.pairs = self.pairs + other.pairs
        return out

    def as_summary(self) -> dict[str, Any]:
        """Plain data in the shape of summary.json's ``findings`` block (keys sorted)."""
        matrix: dict[str, dict[str, int]] = {}
        for (comparison, cause), n in sorted(self.pairs.items()):
            matrix.setdefault(comparison, {})[cause] = n
        return {
            "total": self.total,
            **{f"by_{k}": {v: n for v, n in sorted(self.by[k].items())} for k in STAT_KEYS},
            "by_comparison_and_cause": matrix,
        }


def ordered(groups: tuple[pd.DataFrame, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    """One partition's findings in output order (bucket, group, findings order) and buckets."""
    frames = [g.assign(_group=i) for i, g in enumerate(groups)]
    whole = pd.concat(frames, ignore_index=True)
    buckets = bucket_of(whole["customer_id"])
    order = np.lexsort((whole["_group"].to_numpy(), buckets))  # stable within equal keys
    return whole.iloc[order].drop(columns="_group").reset_index(drop=True), buckets[order]


CSV_OPTIONS = {"quoting_style": "needed"}
# Spills are compressed: on a Dask cluster they cross the network to the driver.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def csv_ready(table: pa.Table) -> pa.Table:
    """Timestamps as ISO UTC text to the second, text cells safe from spreadsheet formulas
    (:mod:`shadowbill.csv_cells`); everything else as Arrow writes it."""
    table = neutralise_table(table)
    for i, name in enumerate(table.column_names):
        if pa.types.is_timestamp(table.schema.field(name).type):
            table = table.set_column(i, name, _iso_seconds(table[name]))
    return table


def _iso_seconds(times: pa.Array | pa.ChunkedArray) -> pa.Array:
    """ "2025-03-12T00:00:00Z" per instant (null stays null); billing periods are whole seconds."""
    column = times.combine_chunks() if isinstance(times, pa.ChunkedArray) else times
    micros = pc.cast(column.cast(pa.timestamp("us", tz="UTC")), pa.int64())
    text = timestamps_iso(micros.fill_null(0).to_numpy())
    if column.null_count == 0:
        return text
    return pc.if_else(pc.is_valid(micros), text, pa.scalar(None, text.type))


def csv_header(schema: pa.Schema) -> bytes:
    """The header line findings.csv starts with."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(csv_ready(schema.empty_table()), sink, pa_csv.WriteOptions(**CSV_OPTIONS))
    return sink.getvalue().to_pybytes()


def csv_rows(table: pa.Table) -> bytes:
    """Rows as findings.csv holds them, without the header."""
    sink = pa.BufferOutputStream()
    options = pa_csv.WriteOptions(include_header=False, **CSV_OPTIONS)
    pa_csv.write_csv(csv_ready(table), sink, options)
    return sink.getvalue().to_pybytes()


def spill(findings: pd.DataFrame, buckets: np.ndarray, path: Path) -> Spill:
    """Write a partition's ordered findings to an Arrow file, one record batch per bucket,
    and the same rows as CSV text beside it (formatting CSV is the costly part: it runs
    here, in parallel, not in the driver)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(
        findings, schema=findings_schema(), preserve_index=False
    ).combine_chunks()
    offsets = np.searchsorted(buckets, np.arange(BUCKETS + 1), side="left")
    batches: dict[int, int] = {}
    ranges: dict[int, tuple[int, int]] = {}
    csv_path = path.with_suffix(".csv")
    with (
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_file(sink, table.schema, options=_IPC_OPTIONS) as writer,
        open(csv_path, "wb") as text,
    ):
        for b in range(BUCKETS):
            lo, hi = int(offsets[b]), int(offsets[b + 1])
            if hi > lo:
                part = table.slice(lo, hi - lo)
                (batch,) = part.to_batches(max_chunksize=hi - lo)
                writer.write_batch(batch)
                batches[b] = len(batches)
                rows = csv_rows(part)
                ranges[b] = (text.tell(), len(rows))
                text.write(rows)
    return Spill(path, batches, csv_path, ranges)


def _bucket_tables(spills: list[Spill]) -> Iterator[pa.Table]:
    """Each bucket's rows in bucket order, from the one partition holding the bucket."""
    partitions = len(spills)
    files = [pa.OSFile(str(s.path), "rb") for s in spills]
    try:
        readers = [pa.ipc.open_file(f) for f in files]
        for b in range(BUCKETS):
            k = b % partitions
            if b in spills[k].batches:
                batch = readers[k].get_batch(spills[k].batches[b])
                yield pa.Table.from_batches([batch], schema=findings_schema())
    finally:
        for f in files:
            f.close()


def merge_spills(spills: list[Spill], out_path: Path) -> Path:
    """Write every partition's findings into one Parquet file, one row group per bucket."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(
        str(out_path), findings_schema(), use_dictionary=list(DICTIONARY_COLUMNS)
    ) as writer:
        for table in _bucket_tables(spills):
            writer.write_table(table, row_group_size=table.num_rows)
    return out_path


def merge_csv(spills: list[Spill], out_path: Path) -> Path:
    """Stitch every partition's CSV text into one findings.csv, bucket by bucket."""
    partitions = len(spills)
    with ExitStack() as files:
        out = files.enter_context(open(out_path, "wb"))
        out.write(csv_header(findings_schema()))
        sources = [files.enter_context(open(s.csv, "rb")) if s.csv else None for s in spills]
        for b in range(BUCKETS):
            k = b % partitions
            source = sources[k]
            if source is None or b not in spills[k].csv_ranges:
                continue
            start, length = spills[k].csv_ranges[b]
            _copy_range(source, out, start, length)
    return out_path


def _copy_range(source: BinaryIO, out: BinaryIO, start: int, length: int) -> None:
    """Append ``length`` bytes of ``source`` from ``start`` to ``out`` (in the kernel on Linux)."""
    out.flush()
    if hasattr(os, "copy_file_range"):
        position = out.tell()
        try:
            while length > 0:
                done = os.copy_file_range(source.fileno(), out.fileno(), length, start, position)
                if done == 0:
                    break
                start, position, length = start + done, position + done, length - done
        except OSError:
            pass  # this file system refuses it: the plain copy below does the rest
        out.seek(position)
    source.seek(start)
    while length > 0:  # no kernel copy here (or it stopped short): in bounded pieces
        piece = source.read(min(length, 1 << 24))
        if not piece:
            raise OSError(f"{source.name}: ends before the rows of a bucket")
        out.write(piece)
        length -= len(piece)


def read_batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """A findings Parquet file, one row group at a time (bounded memory)."""
    file = pq.ParquetFile(str(path))
    for i in range(file.num_row_groups):
        yield file.read_row_group(i, columns=columns)
