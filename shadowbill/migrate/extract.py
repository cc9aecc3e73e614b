"""Extract a legacy source (database + spec, or a folder of canonical files) into a snapshot.

Read in chunks, convert by the spec, validate every row, write Parquet and a manifest.
Bad input (unreachable database, missing table, bad spec) raises a typed one-line error;
bad rows land in quarantine with a reason, and counts are conserved per table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from shadowbill.errors import ExtractSpecError, InputError, SourceError
from shadowbill.migrate.conversions import check_source_columns, convert_chunk
from shadowbill.migrate.extract_spec import ExtractSpec, TableSpec, load_extract_spec
from shadowbill.migrate.file_source import find_table_files, read_table_file
from shadowbill.migrate.sql_source import MixedColumnTypes, SqlReader, mask_url
from shadowbill.migrate.validate import validate_tables
from shadowbill.snapshot_io import TableCounts, file_sha256, snapshot_fingerprint, write_snapshot
from shadowbill.tables import TABLES, Snapshot


@dataclass(frozen=True)
class ExtractResult:
    """What an extraction wrote and counted."""

    out_dir: Path
    source: str  # password masked
    counts: dict[str, TableCounts]
    quarantine_by_reason: dict[str, int]
    quarantine_by_table: dict[str, dict[str, int]]
    elapsed_seconds: float
    fingerprint: str


class _Bar:
    """A rich progress bar per table, or nothing when progress is off."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def start(self, label: str, total: int | None) -> TaskID | None:
        if self.progress is None:
            return None
        return self.progress.add_task(label, total=total)

    def advance(self, task: TaskID | None, rows: int) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, rows)

    def finish(self, task: TaskID | None) -> None:
        if self.progress is not None and task is not None:
            state = next(t for t in self.progress.tasks if t.id == task)
            done = state.completed if state.completed or state.total is not None else 1
            self.progress.update(task, total=done, completed=done)


@contextmanager
def _progress(enabled: bool) -> Iterator[_Bar]:
    if not enabled:
        yield _Bar(None)
        return
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Bar(progress)


def _read_sql_table(
    reader: SqlReader, name: str, tspec: TableSpec, spec: ExtractSpec, chunk_size: int, bar: _Bar
) -> pd.DataFrame:
    """One canonical table from the database, converted chunk by chunk."""
    sql = reader.select(table=tspec.table, query=tspec.query)
    what = f"{tspec.source_label} (spec tables.{name})"
    task = bar.start(name, reader.count(sql) if bar.progress is not None else None)
    try:
        parts = []
        offset = 0
        for i, chunk in enumerate(reader.chunks(sql, chunk_size, what)):
            if i == 0:
                check_source_columns(chunk, name, tspec, spec.locate)
            staged = convert_chunk(
                chunk, TABLES[name], tspec, timezone=spec.timezone, offset=offset
            )
            parts.append(staged)
            offset += len(chunk)
            bar.advance(task, len(chunk))
    finally:
        bar.finish(task)
    if not parts:  # a driver that returned no batch at all: no rows
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def _from_database(
    url: str, spec: ExtractSpec, chunk_size: int, bar: _Bar
) -> dict[str, pd.DataFrame]:
    """Every table the spec names, read from the database."""
    staged: dict[str, pd.DataFrame] = {}
    with SqlReader(url) as reader:
        for name in TABLES:
            tspec = spec.tables.get(name)
            if tspec is None:
                continue
            try:
                frame = _read_sql_table(reader, name, tspec, spec, chunk_size, bar)
            except MixedColumnTypes:  # a SQLite column changes type between batches
                reader.use_sqlalchemy()
                frame = _read_sql_table(reader, name, tspec, spec, chunk_size, bar)
            if len(frame.columns):
                staged[name] = frame
    return staged


def _from_folder(folder: Path, bar: _Bar) -> dict[str, pd.DataFrame]:
    """Every canonical file of a folder."""
    staged: dict[str, pd.DataFrame] = {}
    for file in find_table_files(folder):
        task = bar.start(file.path.name, None)
        staged[file.table.name] = read_table_file(file)
        bar.advance(task, len(staged[file.table.name]))
        bar.finish(task)
    return staged


def extract(
    source: str,
    spec_path: Path | None,
    out_dir: Path,
    *,
    chunk_size: int = 200_000,
    progress: bool = True,
) -> ExtractResult:
    """Extract a database (SQLAlchemy URL + spec) or a folder of canonical files into a snapshot."""
    started = time.perf_counter()
    if chunk_size <= 0:
        raise InputError(f"chunk size must be positive, got {chunk_size}")
    out_dir = Path(out_dir)
    extra: dict[str, object] = {}
    with _progress(progress) as bar:
        if "://" in source:
            masked = mask_url(source)
            if spec_path is None:
                raise ExtractSpecError(f"extracting {masked} needs --spec (an extract spec YAML)")
            spec = load_extract_spec(spec_path)
            extra = {
                "source_name": spec.source,
                "timezone": spec.timezone,
                "spec": {"file": Path(spec_path).name, "sha256": file_sha256(Path(spec_path))},
            }
            staged = _from_database(source, spec, spec.chunk_size or chunk_size, bar)
        elif Path(source).is_dir():
            masked = source
            if spec_path is not None:
                raise ExtractSpecError(
                    f"{spec_path}: a spec maps a database; the folder {source} must hold"
                    " canonical CSV/Parquet files and is read without one"
                )
            staged = _from_folder(Path(source), bar)
        else:
            raise SourceError(
                f"{source}: no such folder, and not a database URL (e.g. sqlite:///legacy.db)"
            )
        task = bar.start("validating", None)
        result = validate_tables(staged)
        bar.finish(task)
        task = bar.start("writing snapshot", None)
        snapshot = Snapshot(result.tables, result.quarantine)
        write_snapshot(snapshot, out_dir, source=masked, counts=result.counts, extra=extra)
        bar.finish(task)
    quarantine = result.quarantine
    by_reason = {
        str(k): int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()
    }
    by_table: dict[str, dict[str, int]] = {}
    pairs = quarantine.groupby(["table", "reason"]).size().reset_index(name="rows")
    for table, reason, n in pairs.itertuples(index=False):  # one per (table, reason)
        by_table.setdefault(str(table), {})[str(reason)] = int(n)
    return ExtractResult(
        out_dir=out_dir,
        source=masked,
        counts=result.counts,
        quarantine_by_reason=by_reason,
        quarantine_by_table=by_table,
        elapsed_seconds=time.perf_counter() - started,
        fingerprint=snapshot_fingerprint(out_dir, verify=False),
    )
