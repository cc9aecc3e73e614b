"""Generate the demo company's legacy billing database, its extract spec and planted errors.

``generate(out_path)`` writes three files: the SQLite database of the legacy engine
(``legacy.db``), ``<stem>.extract.yaml`` mapping its schema onto the canonical tables,
and ``<stem>.errors.csv``, the ground truth of the legacy billing errors planted in it.
The same seed always gives the same table contents.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shadowbill.demo.billing_calendar import add_months, epoch
from shadowbill.demo.ground_truth import errors_frame
from shadowbill.demo.item_history import make_item_history
from shadowbill.demo.legacy_db import write_legacy_db
from shadowbill.demo.legacy_engine import charge_lines, finish_invoices
from shadowbill.demo.legacy_tables import legacy_tables
from shadowbill.demo.metering import make_usage
from shadowbill.demo.planted_errors import ERROR_KINDS, plant_errors
from shadowbill.demo.population import Window, make_population
from shadowbill.demo.price_book import extract_spec_path, load_price_book
from shadowbill.demo.promotions import make_discounts
from shadowbill.errors import InputError


@dataclass(frozen=True)
class DemoResult:
    """What ``generate`` wrote: the three files, row counts, planted errors, time taken."""

    db_path: Path
    spec_path: Path
    errors_path: Path
    window_start: dt.date
    window_end: dt.date  # invoices cover the periods ending in (window_start, window_end]
    table_counts: dict[str, int] = field(default_factory=dict)
    error_counts: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """A few lines for the terminal."""
        counts = ", ".join(f"{k} {v:,}" for k, v in self.table_counts.items())
        errors = ", ".join(f"{k} {v}" for k, v in self.error_counts.items())
        return "\n".join(
            [
                f"legacy database  {self.db_path}  ({self.elapsed_seconds:.1f} s)",
                f"  invoices for the periods ending in ({self.window_start}, {self.window_end}]",
                f"  tables: {counts}",
                f"extract spec     {self.spec_path}",
                f"planted errors   {self.errors_path}  ({sum(self.error_counts.values())}: {errors})",
            ]
        )


def sidecar_paths(out_path: Path) -> tuple[Path, Path]:
    """The extract spec and the planted-errors file written beside ``out_path``."""
    return (
        out_path.with_name(f"{out_path.stem}.extract.yaml"),
        out_path.with_name(f"{out_path.stem}.errors.csv"),
    )


def generate(
    out_path: Path,
    *,
    customers: int = 1000,
    months: int = 12,
    seed: int = 7,
    start: dt.date = dt.date(2025, 1, 1),
) -> DemoResult:
    """Write the demo legacy database, its extract spec and its planted-errors ground truth."""
    began = time.perf_counter()
    if customers < 1:
        raise InputError(f"--customers must be at least 1, got {customers}")
    if months < 1:
        raise InputError(f"--months must be at least 1, got {months}")
    out_path = Path(out_path)
    if out_path.is_dir():
        raise InputError(f"{out_path} is a directory; give a file name for the legacy database")
    laps: dict[str, float] = {}
    lap = time.perf_counter()

    def done(stage: str) -> None:
        nonlocal lap
        now = time.perf_counter()
        laps[stage] = round(now - lap, 3)
        lap = now

    book = load_price_book()
    first = epoch(start)
    window = Window(first, int(add_months(np.array([first]), months)[0]), months)
    pop = make_population(customers, window, seed)
    items = make_item_history(pop, window, book, seed)
    discounts = make_discounts(pop, window, seed)
    usage = make_usage(pop, items, seed)
    done("population")
    periods = pop.periods["sub"].to_numpy()
    subs = pop.subscriptions
    invoices = pop.periods.assign(
        cur=subs["cur"].to_numpy()[periods],
        cust=subs["cust"].to_numpy()[periods],
        every=subs["every"].to_numpy()[periods],
    )
    planted = plant_errors(charge_lines(invoices, items, usage, book), invoices, book, seed)
    billing = finish_invoices(invoices, planted.charges, discounts, pop.customers, book)
    done("billing")
    tables = write_legacy_db(out_path, legacy_tables(pop, items, discounts, usage, billing, book))
    done("legacy_tables_and_sqlite")
    spec_path, errors_path = sidecar_paths(out_path)
    shutil.copyfile(extract_spec_path(), spec_path)
    truth = errors_frame(planted.truth, billing, tables, book)
    truth.to_csv(errors_path, index=False, lineterminator="\n")
    done("sidecars")
    return DemoResult(
        db_path=out_path,
        spec_path=spec_path,
        errors_path=errors_path,
        window_start=start,
        window_end=_date(window.end),
        table_counts={name: t.num_rows for name, t in tables.items()},
        error_counts={k: int((truth["kind"] == k).sum()) for k in ERROR_KINDS},
        elapsed_seconds=time.perf_counter() - began,
        stage_seconds=laps,
    )


def _date(seconds: int) -> dt.date:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).date()
