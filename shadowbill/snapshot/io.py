"""Snapshot folders: the canonical tables as Parquet, the quarantine, and a manifest.

Two layouts. ``buckets`` (format version 2, the default) writes every table that belongs to
customers as one file per non-empty customer bucket (``<table>/b<NNN>.parquet``, see
:mod:`shadowbill.snapshot.partitions`), so one partition of a snapshot larger than memory can be read
alone; shared tables (tax rates) stay one file. ``single`` (format version 1) writes one file
per table; both are read.

The manifest records where the snapshot came from (passwords masked), when, how many rows
each table received, kept and quarantined, and the sha256 of every file, so a snapshot
that was changed after extraction is refused and a sign-off can name exactly what it saw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shadowbill import __version__
from shadowbill.errors import InputError, SnapshotError
from shadowbill.snapshot.buckets import (
    SHARED_TABLES,
    parent_maps,
    row_buckets,
    snapshot_partition,
)
from shadowbill.snapshot.partitions import (
    BUCKETS,
    bucket_of,
    buckets_of_partition,
    check_partitions,
)
from shadowbill.snapshot.tables import (
    QUARANTINE,
    TABLES,
    Snapshot,
    Table,
    empty_frame,
    pandas_dtype,
)

FORMAT = "shadowbill-snapshot"
FORMAT_VERSION = 2  # what write_snapshot writes by default (the bucketed layout)
SINGLE_FORMAT_VERSION = 1  # one file per table
Layout = Literal["buckets", "single"]
LAYOUTS: Final = ("buckets", "single")
MANIFEST = "manifest.json"
QUARANTINE_FILE = "quarantine.parquet"
_VERSION_OF: Final = {"buckets": FORMAT_VERSION, "single": SINGLE_FORMAT_VERSION}
_RESERVED: Final = ("format", "format_version", "layout", "buckets", "tables", "quarantine")
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)")
_BUCKET_FILE = re.compile(r"b(\d{3})\.parquet")


@dataclass(frozen=True)
class TableCounts:
    """Rows one canonical table received, kept, quarantined and excluded on purpose.

    ``rows_in = rows_out + quarantined + excluded``; ``excluded_by_reason`` names the spec's
    reasons (``exclude:`` rules, events folded away).
    """

    rows_in: int
    rows_out: int
    quarantined: int
    excluded: int = 0
    excluded_by_reason: tuple[tuple[str, int], ...] = ()

    @property
    def conserved(self) -> bool:
        """True when every row received is kept, quarantined or excluded (and reasons add up)."""
        by_reason = sum(n for _, n in self.excluded_by_reason)
        reasons_ok = by_reason == self.excluded or not self.excluded_by_reason
        return self.rows_in == self.rows_out + self.quarantined + self.excluded and reasons_ok

    def with_excluded(self, by_reason: Mapping[str, int]) -> TableCounts:
        """These counts plus rows excluded before staging (they were never staged)."""
        n = sum(by_reason.values())
        reasons = tuple(sorted((str(k), int(v)) for k, v in by_reason.items() if v))
        return TableCounts(self.rows_in + n, self.rows_out, self.quarantined, n, reasons)


def mask_password(text: str) -> str:
    """Replace the password of any URL in ``text`` with ``***`` (safe to print and store)."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bucket_file(table: str, bucket: int) -> str:
    """The snapshot-relative file of one bucket of a table: ``invoices/b007.parquet``."""
    return f"{table}/b{bucket:03d}.parquet"


def to_arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    """A frame as an Arrow table with exactly the pinned schema and no pandas metadata.

    An optional column the frame lacks (one added to the contract after the frame's code
    was written, such as ``customers.timezone``) is written empty; a required one is an error.
    """
    missing = [c.name for c in table.columns if c.name not in frame.columns and c.required]
    if missing:
        raise SnapshotError(f"table {table.name} lacks column(s) {', '.join(missing)}")
    arrays = [
        pa.array(frame[c.name], type=c.type, from_pandas=True)
        if c.name in frame.columns
        else pa.nulls(len(frame), c.type)
        for c in table.columns
    ]
    for col, arr in zip(table.columns, arrays, strict=True):
        if col.required and arr.null_count:
            raise SnapshotError(f"table {table.name}: required column {col.name} has empty values")
    return pa.Table.from_arrays(arrays, schema=table.arrow_schema)


def _parquet_bytes(data: pa.Table) -> bytes:
    """One table as the bytes of a zstd Parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _write_bytes(data: bytes, path: Path) -> str:
    """Write a file and return the sha256 of its bytes.

    Not via a temporary name: the manifest, written last, is what makes files a snapshot.
    """
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _digest(files: Mapping[str, str]) -> str:
    """A sha256 over file names and their sha256s (one line each, sorted)."""
    lines = "".join(f"{name}:{sha}\n" for name, sha in sorted(files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def _cannot_write(out_dir: Path, exc: OSError) -> SnapshotError:
    return SnapshotError(f"{out_dir}: cannot write the snapshot ({exc.strerror or exc})")


class SnapshotWriter:
    """Write a snapshot folder piece by piece: bucket files as they are ready, the manifest last.

    Opening removes the folder's manifest (a half-written folder is never mistaken for a
    snapshot) and the data files of an earlier snapshot there, so no stale bucket survives.
    """

    def __init__(self, out_dir: Path, layout: Layout = "buckets") -> None:
        if layout not in LAYOUTS:
            raise InputError(
                f"snapshot layout must be one of {', '.join(LAYOUTS)} (got {layout!r})"
            )
        self.out_dir = Path(out_dir)
        self.layout: Layout = layout
        self._files: dict[str, list[dict[str, Any]]] = {
            name: [] for name in TABLES if self._bucketed(name)
        }
        self._buckets_written: dict[str, set[int]] = {name: set() for name in self._files}
        self._folders = dict.fromkeys(self._files, False)
        self._single: dict[str, dict[str, Any]] = {}
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._clear()
        except OSError as exc:
            raise _cannot_write(self.out_dir, exc) from None

    def _bucketed(self, table: str) -> bool:
        return self.layout == "buckets" and table not in SHARED_TABLES

    def _clear(self) -> None:
        """Remove the manifest, then every data file a snapshot writes (and nothing else)."""
        (self.out_dir / MANIFEST).unlink(missing_ok=True)
        (self.out_dir / QUARANTINE_FILE).unlink(missing_ok=True)
        for name in TABLES:
            (self.out_dir / f"{name}.parquet").unlink(missing_ok=True)
            folder = self.out_dir / name
            if folder.is_dir():
                for path in folder.iterdir():
                    if _BUCKET_FILE.fullmatch(path.name) and path.is_file():
                        path.unlink()

    def _check(self, table: str, data: pa.Table) -> None:
        if not data.schema.equals(TABLES[table].arrow_schema, check_metadata=False):
            raise SnapshotError(f"table {table}: data to write does not have the pinned schema")

    def write_bucket(self, table: str, bucket: int, data: pa.Table) -> None:
        """Write one bucket of a customer table (Arrow, pinned schema); empty data writes nothing."""
        if not self._bucketed(table):
            raise SnapshotError(
                f"table {table} is not written by bucket in a {self.layout} snapshot"
            )
        if not 0 <= bucket < BUCKETS:
            raise SnapshotError(f"bucket {bucket} is outside 0..{BUCKETS - 1}")
        self._check(table, data)
        if data.num_rows == 0:
            return
        file = bucket_file(table, bucket)
        if bucket in self._buckets_written[table]:
            raise SnapshotError(f"{file} is written twice")
        self._buckets_written[table].add(bucket)
        try:
            if not self._folders[table]:
                (self.out_dir / table).mkdir(exist_ok=True)
                self._folders[table] = True
            sha = _write_bytes(_parquet_bytes(data), self.out_dir / file)
        except OSError as exc:
            raise _cannot_write(self.out_dir, exc) from None
        entry = {"bucket": bucket, "file": file, "rows": data.num_rows, "sha256": sha}
        self._files[table].append(entry)

    def write_table(self, table: str, data: pa.Table) -> None:
        """Write a whole table as one file (every table of a single snapshot; shared tables)."""
        if self._bucketed(table):
            raise SnapshotError(f"table {table} is written by bucket in a buckets snapshot")
        self._check(table, data)
        file = f"{table}.parquet"
        try:
            sha = _write_bytes(_parquet_bytes(data), self.out_dir / file)
        except OSError as exc:
            raise _cannot_write(self.out_dir, exc) from None
        self._single[table] = {"file": file, "rows": data.num_rows, "sha256": sha}

    def rows_written(self, table: str) -> int:
        """How many rows of a table have been written so far."""
        if self._bucketed(table):
            return sum(int(f["rows"]) for f in self._files[table])
        return int(self._single[table]["rows"]) if table in self._single else 0

    def finish(
        self,
        quarantine: pd.DataFrame,
        *,
        source: str,
        counts: Mapping[str, TableCounts] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the quarantine and, last, the manifest; returns the manifest path.

        ``counts`` defaults to what was written (nothing lost before it). Counts must be
        conserved and match the rows written, or no manifest is written.
        """
        for name, table in TABLES.items():
            if not self._bucketed(name) and name not in self._single:
                self.write_table(name, table.arrow_schema.empty_table())
        counts = _checked_counts(
            {name: self.rows_written(name) for name in TABLES}, quarantine, counts
        )
        try:
            quarantine_sha = _write_bytes(
                _parquet_bytes(to_arrow(quarantine, QUARANTINE)), self.out_dir / QUARANTINE_FILE
            )
            return self._write_manifest(quarantine, quarantine_sha, source, counts, extra or {})
        except OSError as exc:
            raise _cannot_write(self.out_dir, exc) from None

    def _write_manifest(
        self,
        quarantine: pd.DataFrame,
        quarantine_sha: str,
        source: str,
        counts: Mapping[str, TableCounts],
        extra: Mapping[str, Any],
    ) -> Path:
        tables: dict[str, Any] = {}
        for name in TABLES:
            c = counts[name]
            entry: dict[str, Any] = {
                "rows_in": c.rows_in,
                "rows_out": c.rows_out,
                "quarantined": c.quarantined,
            }
            if c.excluded:
                entry["excluded"] = c.excluded
                entry["excluded_by_reason"] = dict(c.excluded_by_reason)
            if self._bucketed(name):
                files = sorted(self._files[name], key=lambda f: int(f["bucket"]))
                entry["sha256"] = _digest({f["file"]: f["sha256"] for f in files})
                entry["files"] = files
            else:
                single = self._single[name]
                entry = {"file": single["file"], **entry, "sha256": single["sha256"]}
            tables[name] = entry
        reasons: dict[str, int] = {}
        if len(quarantine):
            reasons = {str(k): int(v) for k, v in quarantine["reason"].value_counts().items()}
        layout: dict[str, Any] = {"format_version": _VERSION_OF[self.layout]}
        if self.layout == "buckets":
            layout |= {"layout": "buckets", "buckets": BUCKETS, "shared_tables": [*SHARED_TABLES]}
        manifest: dict[str, Any] = {
            "format": FORMAT,
            **layout,
            "shadowbill_version": __version__,
            "source": mask_password(source),
            "extracted_at": dt.datetime.now(dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "tables": tables,
            "quarantine": {
                "file": QUARANTINE_FILE,
                "rows": len(quarantine),
                "by_reason": dict(sorted(reasons.items())),
                "sha256": quarantine_sha,
            },
            **{k: v for k, v in extra.items() if k not in _RESERVED},
        }
        path = self.out_dir / MANIFEST
        tmp = path.with_name(MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def _checked_counts(
    rows_out: Mapping[str, int],
    quarantine: pd.DataFrame,
    counts: Mapping[str, TableCounts] | None,
) -> dict[str, TableCounts]:
    """Counts per table (defaulting to what is there), refused unless conserved and matching."""
    by_table = quarantine["table"].value_counts() if len(quarantine) else pd.Series(dtype=int)
    checked = dict(counts or {})
    for name in TABLES:
        out = rows_out[name]
        held = int(by_table.get(name, 0))
        given = checked.setdefault(name, TableCounts(out + held, out, held))
        if not given.conserved or given.rows_out != out or given.quarantined != held:
            raise SnapshotError(
                f"table {name}: counts do not add up (in {given.rows_in}, out {given.rows_out},"
                f" quarantined {given.quarantined}, excluded {given.excluded};"
                f" frame has {out}, quarantine has {held})"
            )
    return checked


def write_snapshot(
    snapshot: Snapshot,
    out_dir: Path,
    *,
    source: str,
    counts: Mapping[str, TableCounts] | None = None,
    extra: Mapping[str, Any] | None = None,
    layout: Layout = "buckets",
) -> Path:
    """Write an in-memory snapshot's Parquet files and manifest into ``out_dir``; returns the manifest path.

    ``layout`` ``buckets`` splits each customer table by customer bucket (rows of a bucket
    keep the frame's order); ``single`` writes one file per table (format version 1).
    ``counts`` defaults to what the frames hold (nothing lost before them). Counts must be
    conserved and match the frames, or nothing is written.
    """
    out_dir = Path(out_dir)
    rows_out = {name: len(snapshot.tables[name]) for name in TABLES}
    counts = _checked_counts(rows_out, snapshot.quarantine, counts)
    arrow = {name: to_arrow(snapshot.tables[name], table) for name, table in TABLES.items()}
    writer = SnapshotWriter(out_dir, layout)
    parents = parent_maps(snapshot["subscriptions"], snapshot["invoices"])
    for name, data in arrow.items():
        if layout == "single" or name in SHARED_TABLES:
            writer.write_table(name, data)
            continue
        buckets = row_buckets(name, snapshot.tables[name], parents)
        for bucket, rows in _bucket_runs(buckets):
            writer.write_bucket(name, bucket, data.take(pa.array(rows)))
    return writer.finish(snapshot.quarantine, source=source, counts=counts, extra=extra)


def _bucket_runs(buckets: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(bucket, row positions in their original order) for every bucket that has rows."""
    order = np.argsort(buckets, kind="stable")
    present, starts = np.unique(buckets[order], return_index=True)
    ends = [*starts[1:], len(order)] if len(order) else []
    return [(int(b), order[s:e]) for b, s, e in zip(present, starts, ends, strict=True)]


def read_manifest(snapshot_dir: Path) -> dict[str, Any]:
    """The manifest of a snapshot folder, checked for format, version and layout."""
    path = Path(snapshot_dir) / MANIFEST
    if not path.is_file():
        raise SnapshotError(f"{path}: missing; {snapshot_dir} is not a complete snapshot folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not a shadowbill snapshot manifest")
    version = manifest.get("format_version")
    if version not in (SINGLE_FORMAT_VERSION, FORMAT_VERSION):
        raise SnapshotError(
            f"{path}: snapshot format version {version!r}; this shadowbill reads versions"
            f" {SINGLE_FORMAT_VERSION} and {FORMAT_VERSION}"
        )
    if version == FORMAT_VERSION and (
        manifest.get("layout") != "buckets" or manifest.get("buckets") != BUCKETS
    ):
        raise SnapshotError(
            f"{path}: layout {manifest.get('layout')!r} with {manifest.get('buckets')!r} buckets;"
            f" this shadowbill reads the buckets layout with {BUCKETS} buckets"
        )
    for name in TABLES:
        if name not in manifest.get("tables", {}):
            raise SnapshotError(f"{path}: table {name} is not listed")
    return manifest


def _is_bucketed(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("format_version") == FORMAT_VERSION


def _table_files(
    manifest: Mapping[str, Any], name: str, buckets: set[int] | None = None
) -> list[tuple[str, str]]:
    """(file, sha256) of one table's files, in bucket order; only ``buckets`` if given."""
    entry = manifest["tables"][name]
    if "files" not in entry:  # one file: a single snapshot, or a shared table
        return [(entry["file"], entry["sha256"])]
    files = sorted(entry["files"], key=lambda f: int(f["bucket"]))
    return [(f["file"], f["sha256"]) for f in files if buckets is None or f["bucket"] in buckets]


def _file_hashes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """File name -> sha256 for every file the manifest lists."""
    files = {file: sha for name in TABLES for file, sha in _table_files(manifest, name)}
    files[manifest["quarantine"]["file"]] = manifest["quarantine"]["sha256"]
    return files


def _verified_bytes(snapshot_dir: Path, file: str, sha: str) -> bytes:
    """A listed file's bytes, refused when missing or changed since the manifest was written."""
    path = snapshot_dir / file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"{path}: listed in the manifest but missing") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if hashlib.sha256(data).hexdigest() != sha:
        raise SnapshotError(f"{path}: sha256 differs from the manifest (changed after extraction)")
    return data


def _verify_files(snapshot_dir: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists exists and has the sha256 it records."""
    for file, sha in _file_hashes(manifest).items():
        path = snapshot_dir / file
        if not path.is_file():
            raise SnapshotError(f"{path}: listed in the manifest but missing")
        if file_sha256(path) != sha:
            raise SnapshotError(
                f"{path}: sha256 differs from the manifest (changed after extraction)"
            )


def _read_files(
    snapshot_dir: Path,
    files: Sequence[tuple[str, str]],
    table: Table,
    columns: Sequence[str] | None = None,
    *,
    verify: bool = True,
) -> pd.DataFrame:
    """Some Parquet files of one table, concatenated in order, as a frame in the in-memory dtypes.

    Each file is hashed from the same bytes it is parsed from; a schema that is not the
    pinned one is refused.
    """
    return _as_frame(_read_arrow(snapshot_dir, files, table, columns, verify=verify), table)


def _as_frame(data: pa.Table, table: Table) -> pd.DataFrame:
    """An Arrow table of a snapshot table as a frame in the in-memory dtypes."""
    frame = data.to_pandas(types_mapper=_in_memory_type)
    return frame.astype({c: pandas_dtype(table.column(c).type) for c in data.column_names})


def _optional_columns_added_since(schema: pa.Schema, table: Table) -> set[str] | None:
    """The canonical optional columns a file written by an earlier release lacks (read as
    nulls), or None when the file's schema is not an earlier form of the table's."""
    canonical = table.arrow_schema
    if any(
        canonical.get_field_index(f.name) < 0 or not canonical.field(f.name).equals(f)
        for f in schema
    ):
        return None
    missing = {c.name for c in table.columns if schema.get_field_index(c.name) < 0}
    if any(c.required for c in table.columns if c.name in missing):
        return None
    return missing


def _read_arrow(
    snapshot_dir: Path,
    files: Sequence[tuple[str, str]],
    table: Table,
    columns: Sequence[str] | None = None,
    *,
    verify: bool = True,
) -> pa.Table:
    """Some Parquet files of one table, concatenated in order, as Arrow (hashes checked)."""
    names = list(columns) if columns is not None else table.column_names
    unknown = [c for c in names if c not in table.column_names]
    if unknown:
        raise InputError(f"table {table.name} has no column(s) {', '.join(unknown)}")
    parts = []
    for file, sha in files:
        path = snapshot_dir / file
        if verify:
            source: Any = pa.BufferReader(_verified_bytes(snapshot_dir, file, sha))
        elif path.is_file():
            source = str(path)
        else:
            raise SnapshotError(f"{path}: listed in the manifest but missing")
        parquet = pq.ParquetFile(source)
        if parquet.schema_arrow.equals(table.arrow_schema, check_metadata=False):
            parts.append(parquet.read(columns=names))
            continue
        added = _optional_columns_added_since(parquet.schema_arrow, table)
        if added is None:
            raise SnapshotError(f"{path}: schema differs from the canonical {table.name} table")
        present = [c for c in names if c not in added]
        data = parquet.read(columns=present)
        columns_out = [
            pa.nulls(data.num_rows, table.arrow_schema.field(c).type)
            if c in added
            else data.column(c)
            for c in names
        ]
        parts.append(
            pa.Table.from_arrays(
                columns_out, schema=pa.schema([table.arrow_schema.field(c) for c in names])
            )
        )
    schema = pa.schema([table.arrow_schema.field(c) for c in names])
    return pa.concat_tables(parts) if parts else schema.empty_table()


# How read_customers finds a table's rows: by the column naming their owner (default
# subscription_id), and which ids a table hands on to the tables it owns.
_OWNER_KEY: Final = {
    "customers": "customer_id",
    "subscriptions": "customer_id",
    "invoice_lines": "invoice_id",
}
_OWNS: Final = {"subscriptions": "subscription_id", "invoices": "invoice_id"}


def read_customers(snapshot_dir: Path, customer_ids: Collection[str]) -> Snapshot:
    """Every row of these customers (shared tables and the quarantine whole), hashes checked.

    Only the buckets holding them are read, and only their rows become frames: a few
    customers of a large estate cost a fraction of reading it.
    """
    snapshot_dir = Path(snapshot_dir)
    manifest = read_manifest(snapshot_dir)
    ids = pa.array(sorted({str(c) for c in customer_ids}), type=pa.string())
    wanted = None
    if _is_bucketed(manifest):
        wanted = {int(b) for b in bucket_of(pd.Series(ids.to_pylist(), dtype="string"))}
    keys: dict[str, pa.Array] = {"customer_id": ids}
    tables = {}
    for name, table in TABLES.items():  # owners come before the rows they own
        data = _read_arrow(snapshot_dir, _table_files(manifest, name, wanted), table)
        if name not in SHARED_TABLES:
            key = _OWNER_KEY.get(name, "subscription_id")
            data = data.filter(pc.is_in(data[key], value_set=keys[key]))
            if name in _OWNS:
                keys[_OWNS[name]] = data[_OWNS[name]].combine_chunks()
        tables[name] = _as_frame(data, table)
    quarantine = _read_files(snapshot_dir, [_quarantine_file(manifest)], QUARANTINE)
    return Snapshot(tables, quarantine, manifest)


def _in_memory_type(arrow_type: pa.DataType) -> Any:
    """The pandas dtype Arrow converts straight into (timestamps stay native: no detour)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


def _wanted_buckets(partition: int | None, partitions: int) -> set[int] | None:
    """The buckets of one partition, or None for the whole snapshot."""
    check_partitions(partitions)
    if partition is None:
        return None
    if not 0 <= partition < partitions:
        raise InputError(f"partition must be between 0 and {partitions - 1} (got {partition})")
    return set(buckets_of_partition(partition, partitions))


def read_snapshot(
    snapshot_dir: Path,
    *,
    partition: int | None = None,
    partitions: int = 1,
    skip: Collection[str] = (),
) -> Snapshot:
    """Read a snapshot folder, or one partition of it, checking the sha256 of every file read.

    ``partition`` k of ``partitions`` holds the customers whose bucket ``b`` has
    ``b % partitions == k``, every row that belongs to them, the shared tables and the whole
    quarantine; only those files are read. Rows come in bucket order, then key order.
    A single-file snapshot is read whole and then cut to the partition. Tables named in
    ``skip`` are not read and come back empty (for passes that never look at them).
    """
    snapshot_dir = Path(snapshot_dir)
    unknown = sorted(set(skip) - set(TABLES))
    if unknown:
        raise InputError(f"no snapshot table named {', '.join(unknown)}")
    manifest = read_manifest(snapshot_dir)
    wanted = _wanted_buckets(partition, partitions)
    if not _is_bucketed(manifest) and wanted is not None:
        whole = read_snapshot(snapshot_dir, skip=skip)
        assert partition is not None
        return snapshot_partition(whole, partition, partitions)
    tables = {
        name: (
            empty_frame(table)
            if name in skip
            else _read_files(snapshot_dir, _table_files(manifest, name, wanted), table)
        )
        for name, table in TABLES.items()
    }
    quarantine = _read_files(snapshot_dir, [_quarantine_file(manifest)], QUARANTINE)
    return Snapshot(tables, quarantine, manifest)


def _quarantine_file(manifest: Mapping[str, Any]) -> tuple[str, str]:
    return manifest["quarantine"]["file"], manifest["quarantine"]["sha256"]


def read_quarantine(snapshot_dir: Path) -> pd.DataFrame:
    """Only the quarantine of a snapshot (hash checked)."""
    snapshot_dir = Path(snapshot_dir)
    manifest = read_manifest(snapshot_dir)
    return _read_files(snapshot_dir, [_quarantine_file(manifest)], QUARANTINE)


def scan_columns(
    snapshot_dir: Path,
    table: str,
    columns: Sequence[str],
    *,
    partition: int | None = None,
    partitions: int = 1,
    verify: bool = True,
) -> pd.DataFrame:
    """Some columns of one table (or of its share of a partition), reading nothing else.

    For cheap passes over a whole snapshot (the earliest invoice period, the latest usage
    date) without holding it. ``verify`` hashes each file read (reading its bytes once).
    """
    snapshot_dir = Path(snapshot_dir)
    if table not in TABLES:
        raise InputError(f"no canonical table {table!r} (tables: {', '.join(TABLES)})")
    manifest = read_manifest(snapshot_dir)
    wanted = _wanted_buckets(partition, partitions)
    if not _is_bucketed(manifest) and wanted is not None:
        part = read_snapshot(snapshot_dir, partition=partition, partitions=partitions)
        return part[table][list(columns)]
    files = _table_files(manifest, table, wanted)
    return _read_files(snapshot_dir, files, TABLES[table], columns, verify=verify)


def snapshot_buckets_present(snapshot_dir: Path) -> list[int]:
    """The buckets that hold at least one row of some customer table, in order.

    Read from the manifest of a bucketed snapshot; a single-file snapshot is read to find them.
    """
    snapshot_dir = Path(snapshot_dir)
    manifest = read_manifest(snapshot_dir)
    if _is_bucketed(manifest):
        return sorted(
            {int(f["bucket"]) for name in TABLES for f in manifest["tables"][name].get("files", [])}
        )
    snapshot = read_snapshot(snapshot_dir)
    parents = parent_maps(snapshot["subscriptions"], snapshot["invoices"])
    present: set[int] = set()
    for name, frame in snapshot.tables.items():
        if name not in SHARED_TABLES and len(frame):
            present.update(int(b) for b in np.unique(row_buckets(name, frame, parents)))
    return sorted(present)


def snapshot_fingerprint(snapshot_dir: Path, *, verify: bool = True) -> str:
    """A sha256 over the manifest's file hashes: names exactly the data a sign-off saw.

    With ``verify`` (the default) the files are re-hashed first, so a changed file is refused.
    """
    manifest = read_manifest(snapshot_dir)
    if verify:
        _verify_files(Path(snapshot_dir), manifest)
    return _digest(_file_hashes(manifest))
