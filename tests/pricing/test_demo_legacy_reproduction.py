"""Acceptance: the demo company's history, extracted and recomputed with its legacy catalog,
reproduces every issued legacy invoice except exactly the planted legacy errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from demo_companies import demo_company

from shadowbill.demo.generate import DemoResult
from shadowbill.pricing.catalog import load_catalog
from shadowbill.pricing.engine import PricedInvoices, price
from shadowbill.pricing.run import price_to_files
from shadowbill.snapshot.instants import billed_through
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import Snapshot

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

LEGACY_CATALOG = Path(__file__).resolve().parents[2] / "examples/demo_company/legacy_catalog.yaml"
WINDOW_START = dt.date(2025, 1, 1)  # the generator's default: invoices for periods ending after it
CHARGES = ("recurring", "proration", "usage")


@pytest.fixture(scope="module")
def demo_snapshot() -> tuple[DemoResult, Path, Snapshot]:
    """A 400-customer, 6-month demo company, extracted into a snapshot folder."""
    company = demo_company(400, 6, 11, WINDOW_START)
    return company.made, company.snapshot, read_snapshot(company.snapshot)


@pytest.fixture(scope="module")
def recomputed(demo_snapshot: tuple[DemoResult, Path, Snapshot]) -> PricedInvoices:
    """The legacy catalog's invoices for every period up to where the legacy engine billed."""
    _, _, snap = demo_snapshot
    return price(snap, load_catalog(LEGACY_CATALOG), end=billed_through(snap))


def _key(frame: pd.DataFrame) -> pd.Series:
    stamp = frame["period_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame["subscription_id"].astype("string") + "@" + stamp


def _line_bag(lines: pd.DataFrame) -> pd.Series:
    """Each invoice's lines as a sorted tuple of (kind, price, quantity, amount, start)."""
    rows = lines.assign(
        price_id=lines["price_id"].fillna(""),
        quantity=lines["quantity"].fillna(-1).astype("int64"),
        start=lines["period_start"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    tuples = pd.Series(
        list(
            zip(
                rows["kind"],
                rows["price_id"],
                rows["quantity"],
                rows["amount"],
                rows["start"],
                strict=True,
            )
        ),
        index=rows.index,
    )
    return tuples.groupby(rows["invoice_key"]).agg(lambda t: tuple(sorted(t)))


def test_every_legacy_invoice_is_reproduced_except_the_planted_errors(
    demo_snapshot: tuple[DemoResult, Path, Snapshot], recomputed: PricedInvoices
) -> None:
    demo, _, snap = demo_snapshot
    assert recomputed.errors.empty
    legacy = snap["invoices"].assign(invoice_key=lambda f: _key(f))
    assert legacy["invoice_key"].is_unique
    mine = recomputed.invoices
    in_window = mine["period_end"] > pd.Timestamp(WINDOW_START, tz="UTC")
    mine = mine[in_window]

    # the same invoices exist on both sides
    assert set(mine["invoice_key"]) == set(legacy["invoice_key"])

    both = legacy.merge(mine, on="invoice_key", suffixes=("_legacy", "_new"))
    totals_differ = pd.Series(False, index=both.index)
    for column in ("subtotal", "discount", "tax", "total"):
        totals_differ |= both[f"{column}_legacy"] != both[f"{column}_new"]

    legacy_lines = snap["invoice_lines"].merge(
        legacy[["invoice_id", "invoice_key"]], on="invoice_id"
    )
    bags = pd.DataFrame(
        {"legacy": _line_bag(legacy_lines), "new": _line_bag(recomputed.lines)}
    ).reindex(both["invoice_key"])
    lines_differ = (bags["legacy"] != bags["new"]).to_numpy()

    mismatched = set(both.loc[totals_differ.to_numpy() | lines_differ, "invoice_id_legacy"])
    planted = pd.read_csv(demo.errors_path, dtype="string")
    assert len(planted) > 0
    assert mismatched == set(planted["invoice_id"])


def test_price_command_writes_parquet_and_csv(
    demo_snapshot: tuple[DemoResult, Path, Snapshot], recomputed: PricedInvoices, tmp_path: Path
) -> None:
    _, snap_dir, _ = demo_snapshot
    written = price_to_files(snap_dir, LEGACY_CATALOG, tmp_path / "pq", start=None, end=None)
    assert [p.name for p in written] == ["invoices.parquet", "invoice_lines.parquet"]
    invoices = pd.read_parquet(written[0])
    assert len(invoices) == len(recomputed.invoices)  # default end: where legacy billing stands
    assert invoices["total"].sum() == recomputed.invoices["total"].sum()

    csv = price_to_files(
        snap_dir, LEGACY_CATALOG, tmp_path / "csv", start="2025-03-01", end="2025-05-01", fmt="csv"
    )
    lines = pd.read_csv(csv[1])
    assert list(lines.columns[:10]) == [
        "line_id", "invoice_id", "price_id", "kind", "description", "quantity",
        "unit_amount_decimal", "amount", "period_start", "period_end",
    ]  # fmt: skip
    starts = pd.to_datetime(pd.read_csv(csv[0])["period_start"], utc=True)
    assert starts.min() >= pd.Timestamp("2025-03-01", tz="UTC")
