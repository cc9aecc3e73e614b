"""Snapshot folders: one Parquet file per canonical table, the quarantine, and a manifest.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shadowbill import __version__
from shadowbill.errors import SnapshotError
from shadowbill.tables import QUARANTINE, TABLES, Snapshot, Table, pandas_dtype

FORMAT = "shadowbill-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
QUARANTINE_FILE = "quarantine.parquet"
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)")


@dataclass(frozen=True)
class TableCounts:
    """Rows one canonical table received, kept and quarantined (``rows_in = rows_out + quarantined``)."""

    rows_in: int
    rows_out: int
    quarantined: int

    @property
    def conserved(self) -> bool:
        """True when every row received is either kept or quarantined."""
        return self.rows_in == self.rows_out + self.quarantined


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


def _arrow_table(frame: pd.DataFrame, table: Table) -> pa.Table:
    """A frame as an Arrow table with exactly the pinned schema and no pandas metadata."""
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise SnapshotError(f"table {table.name} lacks column(s) {', '.join(missing)}")
    arrays = [
        pa.array(frame[c], type=table.column(c).type, from_pandas=True) for c in table.column_names
    ]
    for col, arr in zip(table.columns, arrays, strict=True):
        if col.required and arr.null_count:
            raise SnapshotError(f"table {table.name}: required column {col.name} has empty values")
    return pa.Table.from_arrays(arrays, schema=table.arrow_schema)


def _write_parquet(frame: pd.DataFrame, table: Table, path: Path) -> str:
    """Write one table (atomically, via a temporary name) and return its sha256."""
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(_arrow_table(frame, table), tmp, compression="zstd")
    os.replace(tmp, path)
    return file_sha256(path)


def write_snapshot(
    snapshot: Snapshot,
    out_dir: Path,
    *,
    source: str,
    counts: Mapping[str, TableCounts] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the snapshot's Parquet files and manifest into ``out_dir``; returns the manifest path.

    ``counts`` defaults to what the frames hold (nothing lost before them). Counts must be
    conserved and match the frames, or nothing is written.
    """
    out_dir = Path(out_dir)
    quarantine = snapshot.quarantine
    by_table = quarantine["table"].value_counts() if len(quarantine) else pd.Series(dtype=int)
    counts = dict(counts or {})
    for name in TABLES:
        rows_out = len(snapshot.tables[name])
        held = int(by_table.get(name, 0))
        given = counts.setdefault(name, TableCounts(rows_out + held, rows_out, held))
        if not given.conserved or given.rows_out != rows_out or given.quarantined != held:
            raise SnapshotError(
                f"table {name}: counts do not add up (in {given.rows_in}, out {given.rows_out},"
                f" quarantined {given.quarantined}; frame has {rows_out}, quarantine has {held})"
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        return _write_files(snapshot, out_dir, source, counts, extra or {})
    except OSError as exc:
        raise SnapshotError(
            f"{out_dir}: cannot write the snapshot ({exc.strerror or exc})"
        ) from None


def _write_files(
    snapshot: Snapshot,
    out_dir: Path,
    source: str,
    counts: Mapping[str, TableCounts],
    extra: Mapping[str, Any],
) -> Path:
    """Write every table, the quarantine and, last, the manifest."""
    quarantine = snapshot.quarantine
    manifest_path = out_dir / MANIFEST
    manifest_path.unlink(missing_ok=True)  # a half-written folder is never mistaken for a snapshot
    tables: dict[str, Any] = {}
    for name, table in TABLES.items():
        file = f"{name}.parquet"
        sha = _write_parquet(snapshot.tables[name], table, out_dir / file)
        c = counts[name]
        tables[name] = {
            "file": file,
            "rows_in": c.rows_in,
            "rows_out": c.rows_out,
            "quarantined": c.quarantined,
            "sha256": sha,
        }
    reasons: dict[str, int] = {}
    if len(quarantine):
        reasons = {str(k): int(v) for k, v in quarantine["reason"].value_counts().items()}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
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
            "sha256": _write_parquet(quarantine, QUARANTINE, out_dir / QUARANTINE_FILE),
        },
        **{k: v for k, v in extra.items() if k not in ("tables", "quarantine")},
    }
    tmp = manifest_path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, manifest_path)
    return manifest_path


def read_manifest(snapshot_dir: Path) -> dict[str, Any]:
    """The manifest of a snapshot folder, checked for format and version."""
    path = Path(snapshot_dir) / MANIFEST
    if not path.is_file():
        raise SnapshotError(f"{path}: missing; {snapshot_dir} is not a complete snapshot folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path}: not a shadowbill snapshot manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(
            f"{path}: snapshot format version {manifest.get('format_version')!r};"
            f" this shadowbill reads version {FORMAT_VERSION}"
        )
    for name in TABLES:
        if name not in manifest.get("tables", {}):
            raise SnapshotError(f"{path}: table {name} is not listed")
    return manifest


def _file_hashes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """File name -> sha256 for every file the manifest lists."""
    files = {t["file"]: t["sha256"] for t in manifest["tables"].values()}
    files[manifest["quarantine"]["file"]] = manifest["quarantine"]["sha256"]
    return files


def _read_table(path: Path, table: Table) -> pd.DataFrame:
    """One Parquet file as a frame in the in-memory dtypes, refusing a schema that is not pinned."""
    data = pq.read_table(path)
    if not data.schema.equals(table.arrow_schema, check_metadata=False):
        raise SnapshotError(f"{path}: schema differs from the canonical {table.name} table")
    frame = data.to_pandas(types_mapper=_in_memory_type)
    return frame.astype({c.name: pandas_dtype(c.type) for c in table.columns})


def _in_memory_type(arrow_type: pa.DataType) -> Any:
    """The pandas dtype Arrow converts straight into (timestamps stay native: no detour)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    return None


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


def read_snapshot(snapshot_dir: Path) -> Snapshot:
    """Read a snapshot folder after checking its manifest and every file's sha256."""
    snapshot_dir = Path(snapshot_dir)
    manifest = read_manifest(snapshot_dir)
    _verify_files(snapshot_dir, manifest)
    tables = {
        name: _read_table(snapshot_dir / manifest["tables"][name]["file"], table)
        for name, table in TABLES.items()
    }
    quarantine = _read_table(snapshot_dir / manifest["quarantine"]["file"], QUARANTINE)
    return Snapshot(tables, quarantine, manifest)


def snapshot_fingerprint(snapshot_dir: Path, *, verify: bool = True) -> str:
    """A sha256 over the manifest's file hashes: names exactly the data a sign-off saw.

    With ``verify`` (the default) the files are re-hashed first, so a changed file is refused.
    """
    manifest = read_manifest(snapshot_dir)
    if verify:
        _verify_files(Path(snapshot_dir), manifest)
    lines = "".join(f"{name}:{sha}\n" for name, sha in sorted(_file_hashes(manifest).items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()
