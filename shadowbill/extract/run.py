"""Extract a legacy source (database + spec, or a folder of canonical files) into a snapshot.

Read in chunks, convert by the spec, validate every row, write Parquet and a manifest.
Bad input (unreachable database, missing table, bad spec) raises a typed one-line error;
bad rows land in quarantine with a reason, and counts are conserved per table.

The default ``buckets`` layout streams: each chunk is spilled to disk by customer bucket as
it is read, then validated and written a group of buckets at a time
(:mod:`shadowbill.extract.streaming`), so memory is bounded by the chunk and the group, not
by the source. The ``single`` layout (one file per table) validates everything in memory.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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

from shadowbill.errors import ExtractSpecError, InputError, SnapshotError, SourceError
from shadowbill.extract.conversions import check_source_columns, convert_chunk
from shadowbill.extract.file_source import find_table_files, read_table_file
from shadowbill.extract.period_boundaries import boundary_warnings
from shadowbill.extract.source_rules import check_columns, exclude_rows, fold_events
from shadowbill.extract.spec import ExtractSpec, TableSpec, load_extract_spec
from shadowbill.extract.sql_source import MixedColumnTypes, SqlReader, mask_url
from shadowbill.extract.streaming import StreamingValidation
from shadowbill.extract.validate import validate_tables
from shadowbill.snapshot.io import (
    LAYOUTS,
    Layout,
    SnapshotWriter,
    TableCounts,
    file_sha256,
    snapshot_fingerprint,
    write_snapshot,
)
from shadowbill.snapshot.partitions import BUCKETS
from shadowbill.snapshot.tables import TABLES, Snapshot

MIN_GROUP_ROWS = 100_000  # tiny groups would cost more in fixed overhead than they save
SPILL_DIR = ".spill"  # stage one's working folder inside the snapshot folder, deleted after
Sink = Callable[[str, pd.DataFrame], None]  # receives each staged chunk of a table


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
    layout: str = "buckets"
    warnings: dict[str, int] = field(default_factory=dict)  # e.g. usage_off_period_boundary


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
    reader: SqlReader,
    name: str,
    tspec: TableSpec,
    spec: ExtractSpec,
    chunk_size: int,
    bar: _Bar,
    sink: Sink,
    excluded: Counter[str],
) -> None:
    """One canonical table from the database, converted chunk by chunk into ``sink``.

    Rows an ``exclude:`` rule or the fold leaves out are counted in ``excluded`` by reason.
    """
    sql = with_fragments(reader.select(table=tspec.table, query=tspec.query), spec)
    what = f"{tspec.source_label} (spec tables.{name})"
    task = bar.start(name, reader.count(sql) if bar.progress is not None else None)
    chunks = reader.chunks(sql, chunk_size, what)
    if tspec.fold is not None:  # an event log is folded whole: every event of a key together
        chunks = iter(_folded(list(chunks), name, tspec, spec, excluded))
    try:
        offset = 0
        for i, chunk in enumerate(chunks):
            if i == 0:
                _check_rule_columns(chunk, name, tspec, spec)
                check_source_columns(chunk, name, tspec, spec.locate)
            bar.advance(task, len(chunk))
            chunk, dropped = exclude_rows(chunk, tspec.exclude)
            excluded.update(dropped)
            staged = convert_chunk(
                chunk, TABLES[name], tspec, timezone=spec.timezone, offset=offset
            )
            sink(name, staged)
            offset += len(chunk)
    finally:
        bar.finish(task)


def with_fragments(sql: str, spec: ExtractSpec) -> str:
    """The SELECT with the spec's shared ``with:`` fragments as common table expressions."""
    if not spec.with_:
        return sql
    head = re.match(r"\s*with\s+", sql, flags=re.IGNORECASE)
    if head:  # the query has its own WITH: the fragments come first, then its own
        return f"WITH {spec.with_clause()},\n{sql[head.end() :]}"
    return f"WITH {spec.with_clause()}\n{sql}"


def _check_rule_columns(
    chunk: pd.DataFrame, name: str, tspec: TableSpec, spec: ExtractSpec
) -> None:
    """The source columns that exclusions and folding name exist (errors name the spec key)."""
    for i, rule in enumerate(tspec.exclude):
        check_columns(chunk, list(rule.when), spec.locate("tables", name, "exclude", str(i)))


def _folded(
    chunks: list[pd.DataFrame],
    name: str,
    tspec: TableSpec,
    spec: ExtractSpec,
    excluded: Counter[str],
) -> list[pd.DataFrame]:
    """The event log read whole, its excluded rows left out, folded into validity rows."""
    assert tspec.fold is not None
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    fold = tspec.fold
    names = [fold.key, fold.at, *fold.order_by, *(fold.ends or {})]
    check_columns(frame, names, spec.locate("tables", name, "fold"))
    _check_rule_columns(frame, name, tspec, spec)
    frame, dropped = exclude_rows(frame, tspec.exclude)
    excluded.update(dropped)
    folded, consumed = fold_events(frame, fold)
    excluded.update(consumed)
    return [folded]


def _stream_database(
    url: str,
    spec: ExtractSpec,
    chunk_size: int,
    bar: _Bar,
    sink: Sink,
    begin: Callable[[str], None],
    excluded: dict[str, Counter[str]],
) -> None:
    """Every table the spec names, read from the database in canonical order into ``sink``."""
    with SqlReader(url) as reader:
        for name in TABLES:
            tspec = spec.tables.get(name)
            if tspec is None:
                continue
            begin(name)
            excluded[name] = Counter()
            try:
                _read_sql_table(reader, name, tspec, spec, chunk_size, bar, sink, excluded[name])
            except MixedColumnTypes:  # a SQLite column changes type between batches
                reader.use_sqlalchemy()
                begin(name)
                excluded[name] = Counter()
                _read_sql_table(reader, name, tspec, spec, chunk_size, bar, sink, excluded[name])


def _from_database(
    url: str, spec: ExtractSpec, chunk_size: int, bar: _Bar, excluded: dict[str, Counter[str]]
) -> dict[str, pd.DataFrame]:
    """Every table the spec names, read from the database (whole, in memory)."""
    parts: dict[str, list[pd.DataFrame]] = {}

    def begin(name: str) -> None:
        parts[name] = []

    _stream_database(url, spec, chunk_size, bar, lambda n, f: parts[n].append(f), begin, excluded)
    return {name: pd.concat(p, ignore_index=True) for name, p in parts.items() if p}


def _stream_folder(folder: Path, bar: _Bar, sink: Sink, begin: Callable[[str], None]) -> None:
    """Every canonical file of a folder (each read whole), in canonical order, into ``sink``."""
    for file in find_table_files(folder):
        task = bar.start(file.path.name, None)
        begin(file.table.name)
        staged = read_table_file(file)
        sink(file.table.name, staged)
        bar.advance(task, len(staged))
        bar.finish(task)


def _from_folder(folder: Path, bar: _Bar) -> dict[str, pd.DataFrame]:
    """Every canonical file of a folder."""
    staged: dict[str, pd.DataFrame] = {}
    _stream_folder(folder, bar, staged.__setitem__, lambda _: None)
    return staged


def extract(
    source: str,
    spec_path: Path | None,
    out_dir: Path,
    *,
    chunk_size: int = 200_000,
    progress: bool = True,
    layout: Layout = "buckets",
    group_rows: int | None = None,
    source_label: str | None = None,
) -> ExtractResult:
    """Extract a database (SQLAlchemy URL + spec) or a folder of canonical files into a snapshot.

    ``layout`` ``buckets`` (the default) streams through a spill on disk and writes one file
    per customer bucket; ``single`` validates in memory and writes one file per table.
    ``group_rows`` bounds the rows validated at once in the buckets layout (default: four
    chunks' worth, at least ``MIN_GROUP_ROWS``). ``source_label`` names the source in the
    manifest where the folder is a staging copy (e.g. ``stripe:``).
    """
    started = time.perf_counter()
    if chunk_size <= 0:
        raise InputError(f"chunk size must be positive, got {chunk_size}")
    if layout not in LAYOUTS:
        raise InputError(f"snapshot layout must be one of {', '.join(LAYOUTS)} (got {layout!r})")
    if group_rows is not None and group_rows <= 0:
        raise InputError(f"rows validated at once must be positive, got {group_rows}")
    out_dir = Path(out_dir)
    extra: dict[str, object] = {}
    spec: ExtractSpec | None = None
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
        chunk_size = spec.chunk_size or chunk_size
    elif Path(source).is_dir():
        masked = source_label or source
        if spec_path is not None:
            raise ExtractSpecError(
                f"{spec_path}: a spec maps a database; the folder {source} must hold"
                " canonical CSV/Parquet files and is read without one"
            )
    else:
        raise SourceError(
            f"{source}: no such folder, and not a database URL (e.g. sqlite:///legacy.db)"
        )
    with _progress(progress) as bar:
        if layout == "single":
            counts, quarantine, warnings = _extract_in_memory(
                source, masked, spec, chunk_size, bar, out_dir, extra
            )
        else:
            rows = group_rows if group_rows is not None else max(4 * chunk_size, MIN_GROUP_ROWS)
            counts, quarantine, warnings = _extract_streaming(
                source, masked, spec, chunk_size, rows, bar, out_dir, extra
            )
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
        counts=counts,
        quarantine_by_reason=by_reason,
        quarantine_by_table=by_table,
        elapsed_seconds=time.perf_counter() - started,
        fingerprint=snapshot_fingerprint(out_dir, verify=False),
        layout=layout,
        warnings=warnings,
    )


def _extract_in_memory(
    source: str,
    masked: str,
    spec: ExtractSpec | None,
    chunk_size: int,
    bar: _Bar,
    out_dir: Path,
    extra: dict[str, object],
) -> tuple[dict[str, TableCounts], pd.DataFrame, dict[str, int]]:
    """Read everything, validate it at once, write one file per table (format version 1)."""
    excluded: dict[str, Counter[str]] = {}
    if spec is not None:
        staged = _from_database(source, spec, chunk_size, bar, excluded)
    else:
        staged = _from_folder(Path(source), bar)
    task = bar.start("validating", None)
    result = validate_tables(staged)
    bar.finish(task)
    task = bar.start("writing snapshot", None)
    snapshot = Snapshot(result.tables, result.quarantine)
    counts = _with_excluded(result.counts, excluded)
    warnings = boundary_warnings(result.tables)
    extra = _with_warnings(extra, warnings)
    write_snapshot(snapshot, out_dir, source=masked, counts=counts, extra=extra, layout="single")
    bar.finish(task)
    return counts, result.quarantine, warnings


def _with_warnings(extra: dict[str, object], warnings: dict[str, int]) -> dict[str, object]:
    """The manifest's extra keys plus the warnings counted, when there are any."""
    if not any(warnings.values()):
        return extra
    return {**extra, "warnings": dict(sorted(warnings.items()))}


def _with_excluded(
    counts: dict[str, TableCounts], excluded: dict[str, Counter[str]]
) -> dict[str, TableCounts]:
    """Counts with the rows each table's spec excluded before staging."""
    return {
        name: c.with_excluded(excluded[name]) if excluded.get(name) else c
        for name, c in counts.items()
    }


def _extract_streaming(
    source: str,
    masked: str,
    spec: ExtractSpec | None,
    chunk_size: int,
    group_rows: int,
    bar: _Bar,
    out_dir: Path,
    extra: dict[str, object],
) -> tuple[dict[str, TableCounts], pd.DataFrame, dict[str, int]]:
    """Spill the source by bucket, then validate and write a group of buckets at a time."""
    created = not out_dir.exists()
    work = out_dir / SPILL_DIR
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if work.exists():  # left by an interrupted run
            shutil.rmtree(work)
    except OSError as exc:
        raise SnapshotError(
            f"{out_dir}: cannot write the snapshot ({exc.strerror or exc})"
        ) from None
    stream = StreamingValidation(work, group_rows=group_rows)
    excluded: dict[str, Counter[str]] = {}
    finished = False
    try:
        if spec is not None:
            _stream_database(source, spec, chunk_size, bar, stream.add, stream.begin, excluded)
        else:
            _stream_folder(Path(source), bar, stream.add, stream.begin)
        writer = SnapshotWriter(out_dir, "buckets")
        task = bar.start("buckets validated", BUCKETS)
        written = stream.finish(writer, lambda n: bar.advance(task, n))
        bar.finish(task)
        task = bar.start("writing snapshot", None)
        counts = _with_excluded(written.counts, excluded)
        extra = _with_warnings(extra, written.warnings)
        writer.finish(written.quarantine, source=masked, counts=counts, extra=extra)
        bar.finish(task)
        finished = True
    finally:
        stream.close()
        if not finished and created:
            _remove_if_empty(out_dir)
    return counts, written.quarantine, written.warnings


def _remove_if_empty(folder: Path) -> None:
    """Remove a folder this run created when nothing was written into it."""
    with contextlib.suppress(OSError):  # not empty, or already gone: leave it
        folder.rmdir()
