"""The table printed after an extraction: rows in/out/quarantined per table, and why."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from shadowbill.extract.period_boundaries import WARNING_ROWS
from shadowbill.extract.quarantine import REASONS
from shadowbill.extract.run import ExtractResult


def summary_tables(result: ExtractResult) -> list[Table]:
    """The rich tables of an extraction summary: counts per table, then quarantine by reason."""
    counts = Table(title=f"Extracted {result.source} -> {result.out_dir}")
    for name in ("table", "rows in", "rows out", "quarantined"):
        counts.add_column(name, justify="left" if name == "table" else "right")
    for name, c in result.counts.items():
        counts.add_row(name, f"{c.rows_in:,}", f"{c.rows_out:,}", f"{c.quarantined:,}")
    total_in = sum(c.rows_in for c in result.counts.values())
    total_out = sum(c.rows_out for c in result.counts.values())
    total_q = sum(c.quarantined for c in result.counts.values())
    counts.add_section()
    counts.add_row("total", f"{total_in:,}", f"{total_out:,}", f"{total_q:,}")
    reasons = Table(title="Quarantined by reason")
    for name in ("reason", "rows", "tables", "meaning"):
        reasons.add_column(name, justify="right" if name == "rows" else "left")
    for reason, n in result.quarantine_by_reason.items():
        tables = ", ".join(
            f"{t} {r[reason]:,}" for t, r in result.quarantine_by_table.items() if reason in r
        )
        reasons.add_row(reason, f"{n:,}", tables, REASONS.get(reason, ""))
    if not result.quarantine_by_reason:
        reasons.add_row("(none)", "0", "", "every row was kept")
    excluded = [(n, c) for n, c in result.counts.items() if c.excluded]
    if not excluded:
        return [counts, reasons]
    left_out = Table(
        title="Excluded on purpose by the spec (rows in = out + quarantined + excluded)"
    )
    for name in ("table", "reason", "rows"):
        left_out.add_column(name, justify="right" if name == "rows" else "left")
    for name, c in excluded:
        for reason, n in c.excluded_by_reason:
            left_out.add_row(name, reason, f"{n:,}")
    return [counts, reasons, left_out]


def print_summary(result: ExtractResult, console: Console | None = None) -> None:
    """Print the extraction summary, plus elapsed time and the snapshot fingerprint."""
    console = console or Console()
    for table in summary_tables(result):
        console.print(table)
    for name, n in result.warnings.items():
        if n:
            console.print(
                f"warning: {n:,} {WARNING_ROWS.get(name, name)} start on no billing period"
                " boundary of their subscription (check time zones and time of day:"
                " docs/extract-spec.md); price will not pair or price them"
            )
    console.print(
        f"snapshot {result.out_dir} fingerprint {result.fingerprint[:16]}"
        f" ({result.elapsed_seconds:.1f} s)"
    )
