"""The extraction summary printed by `shadowbill extract`: a golden rendering."""

from __future__ import annotations

import io
from pathlib import Path

from fixtures_golden import Golden
from rich.console import Console

from shadowbill.extract.run import ExtractResult
from shadowbill.extract.summary import print_summary
from shadowbill.snapshot.io import TableCounts
from shadowbill.snapshot.tables import TABLES

GOLDEN = Path(__file__).parent / "golden" / "extract_summary.txt"


def rendered(result: ExtractResult) -> str:
    out = io.StringIO()
    console = Console(file=out, width=110, color_system=None, force_terminal=False)
    print_summary(result, console)
    return out.getvalue()


def sample_result() -> ExtractResult:
    counts = {name: TableCounts(10 * i, 10 * i, 0) for i, name in enumerate(TABLES, start=1)}
    counts["customers"] = TableCounts(1_250, 1_247, 3)
    counts["invoices"] = TableCounts(30_000, 29_990, 10)
    counts["invoice_lines"] = TableCounts(120_000, 119_960, 40)
    return ExtractResult(
        out_dir=Path("snapshots/2025-06"),
        source="postgresql+psycopg://billing:***@db/legacy",
        counts=counts,
        quarantine_by_reason={
            "duplicate_key": 3,
            "invoice_lines_mismatch": 10,
            "parent_quarantined": 40,
        },
        quarantine_by_table={
            "customers": {"duplicate_key": 3},
            "invoices": {"invoice_lines_mismatch": 10},
            "invoice_lines": {"parent_quarantined": 40},
        },
        elapsed_seconds=12.34,
        fingerprint="ab" * 32,
    )


def test_summary_matches_golden_file(golden: Golden) -> None:
    golden(GOLDEN, rendered(sample_result()))


def test_summary_totals_and_empty_quarantine():
    result = sample_result()
    text = rendered(result)
    rows_in = sum(c.rows_in for c in result.counts.values())
    rows_out = sum(c.rows_out for c in result.counts.values())
    total = next(line for line in text.splitlines() if "total" in line)
    assert f"{rows_in:,}" in total and f"{rows_out:,}" in total
    assert f"{rows_in - rows_out:,}" in total
    clean = ExtractResult(
        result.out_dir, result.source, result.counts, {}, {}, result.elapsed_seconds, "0" * 64
    )
    assert "every row was kept" in rendered(clean)
