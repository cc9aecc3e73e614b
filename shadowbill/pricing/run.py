"""``shadowbill price``: price a snapshot folder under a catalog and write the invoices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shadowbill.csv_cells import neutralise_frame
from shadowbill.errors import InputError
from shadowbill.output_folder import StagedFolder
from shadowbill.pricing.catalog import load_catalog
from shadowbill.pricing.engine import PricedInvoices, price
from shadowbill.snapshot.instants import billed_through

FORMATS = ("parquet", "csv")


def _timestamp(text: str | None, option: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise InputError(f"--{option} {text!r} is not an ISO date or time") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def write_priced(priced: PricedInvoices, out_dir: Path, fmt: str = "parquet") -> list[Path]:
    """Write invoices, invoice_lines (and pricing_errors when any) as Parquet or CSV."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use parquet or csv")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {"invoices": priced.invoices, "invoice_lines": priced.lines}
    if len(priced.errors):
        frames["pricing_errors"] = priced.errors
    written = []
    for name, frame in frames.items():
        path = out_dir / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        else:
            neutralise_frame(frame).to_csv(
                path, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%SZ"
            )
        written.append(path)
    return written


def price_to_files(
    snapshot_dir: Path,
    catalog_path: Path,
    out_dir: Path,
    *,
    start: str | None,
    end: str | None,
    fmt: str = "parquet",
) -> list[Path]:
    """Price every period of a snapshot folder with a catalog; write the files, return them.

    ``end`` defaults to how far the legacy engine has billed (:func:`~shadowbill.snapshot.instants.billed_through`).
    """
    from shadowbill.snapshot.io import read_snapshot

    catalog = load_catalog(catalog_path)
    snapshot = read_snapshot(Path(snapshot_dir))
    end_ts = _timestamp(end, "to") or billed_through(snapshot)
    priced = price(snapshot, catalog, start=_timestamp(start, "from"), end=end_ts)
    with StagedFolder(out_dir) as staged:
        written = write_priced(priced, staged.path, fmt)
        staged.publish()
    return [staged.moved(p) for p in written]
