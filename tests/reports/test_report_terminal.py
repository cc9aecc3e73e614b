"""The terminal summary and the few lines `shadowbill check` prints on failure."""

from __future__ import annotations

from rich.console import Console

from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.terminal import format_gate_failure, print_terminal_summary


def test_summary_shows_verdict_totals_causes_and_failures(result: ReconciliationResult) -> None:
    console = Console(record=True, width=160, color_system="truecolor")
    print_terminal_summary(result, console)
    text = console.export_text(clear=False)
    assert "FAIL" in text and "2 of 4 gate checks pass" in text
    for cur in ("USD", "EUR", "JPY", "KWD"):
        assert cur in text
    assert "Price change" in text
    assert "max_unexplained" in text and "max_unmapped" in text
    assert "\x1b[" in console.export_text(styles=True)  # coloured


def test_gate_failure_lines(result: ReconciliationResult) -> None:
    message = format_gate_failure(result)
    lines = message.splitlines()
    assert lines[0] == "gate failed for phase 2 (Existing customers): 2 of 4 checks failed"
    unexplained = result.verdict.checks[0]
    assert (
        lines[1]
        == f"  max_unexplained: {unexplained.value} (limit <= 0 findings): {unexplained.detail}"
    )
    assert lines[2] == "  max_unmapped: 5 (limit <= 0): 5 subscriptions match no rule"
    assert len(lines) == 3


def test_quiet_on_success(passing_result: ReconciliationResult) -> None:
    assert format_gate_failure(passing_result) == ""
    console = Console(record=True, width=120)
    print_terminal_summary(passing_result, console)
    assert "PASS" in console.export_text() and "✗" not in console.export_text()
