"""What a person sees in the terminal: a short coloured summary, or why the gate failed."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shadowbill.money import format_minor
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports import aggregates as agg

TOP_CAUSES = 5


def _signed(amount: int, currency: str) -> Text:
    text = format_minor(amount, currency)
    style = "yellow" if amount > 0 else "cyan" if amount < 0 else "dim"
    return Text(("+" if amount > 0 else "") + text, style=style)


def print_terminal_summary(result: ReconciliationResult, console: Console | None = None) -> None:
    """Print the verdict, totals per currency, the top causes and the failing checks."""
    console = console or Console()
    agg.check_result(result)
    verdict = result.verdict
    word = (
        Text(" PASS ", style="bold white on green")
        if verdict.passed
        else Text(" FAIL ", style="bold white on red")
    )
    console.print(
        Text.assemble(
            word,
            f"  phase {result.phase} ({result.phase_name}): ",
            f"{len(verdict.checks) - len(verdict.failures)} of {len(verdict.checks)} gate checks pass",
        )
    )

    totals = agg.currency_totals(result)
    table = Table(title="Totals per currency (mapped customers)", title_justify="left")
    for name in ("Currency", "Customers", "Legacy", "New", "Change", "%", "Up/down", "Unexplained"):
        table.add_column(name, justify="left" if name == "Currency" else "right")
    for r in totals.itertuples(index=False):  # one row per currency
        cur = str(r.currency)
        delta, legacy = agg.as_int(r.delta), agg.as_int(r.legacy_total)
        pct = agg.format_basis_points(agg.ratio_basis_points(delta, legacy))
        unexplained = agg.as_int(r.unexplained)
        table.add_row(
            cur,
            f"{agg.as_int(r.customers):,}",
            format_minor(legacy, cur),
            format_minor(agg.as_int(r.new_total), cur),
            _signed(delta, cur),
            pct,
            f"{agg.as_int(r.up):,}/{agg.as_int(r.down):,}",
            Text(format_minor(unexplained, cur), style="bold red" if unexplained else "dim"),
        )
    console.print(table)

    causes = agg.cause_totals(result.waterfall)
    if not causes.empty:
        ranked = causes.sort_values(["customers", "cause"], ascending=[False, True], kind="stable")
        lines = Table(title="Top causes (customers affected)", title_justify="left", box=None)
        for name in ("Cause", "Currency", "Customers", "Net"):
            lines.add_column(name, justify="right" if name in ("Customers", "Net") else "left")
        for r in ranked.head(TOP_CAUSES).itertuples(index=False):
            lines.add_row(
                agg.cause_label(str(r.cause)),
                str(r.currency),
                f"{agg.as_int(r.customers):,}",
                _signed(agg.as_int(r.net), str(r.currency)),
            )
        console.print(lines)

    for check in verdict.failures:
        console.print(
            Text.assemble(
                Text("✗ ", style="bold red"),
                Text(check.name, style="bold"),
                f": {check.value} (limit {check.limit}) — {check.detail}",
            )
        )


def format_gate_failure(result: ReconciliationResult) -> str:
    """A few plain lines saying why the gate failed; empty when it passed."""
    verdict = result.verdict
    if verdict.passed:
        return ""
    failures = verdict.failures
    head = (
        f"gate failed for phase {result.phase} ({result.phase_name}): "
        f"{len(failures)} of {len(verdict.checks)} checks failed"
    )
    if not failures:
        return head.replace(
            f"{len(failures)} of {len(verdict.checks)} checks failed", "no check passed it"
        )
    lines = [head]
    lines += [f"  {c.name}: {c.value} (limit {c.limit}): {c.detail}" for c in failures]
    return "\n".join(lines)
