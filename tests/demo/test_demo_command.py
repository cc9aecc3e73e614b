"""`shadowbill demo` end to end: report, planted errors found, a migrated batch per phase."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from shadowbill.cli.app import main
from shadowbill.demo.migration import shift_dates
from shadowbill.ledger import open_ledger

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = CliRunner().invoke(
        main, ["demo", "--customers", "300", "--months", "8", "--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    # a report and a verdict for each phase; the shipped policy passes all three
    for phase in (1, 2, 3):
        assert f"gate verdict (phase {phase}): PASS" in run.output, run.output
        assert (out / f"report-phase{phase}" / "report.html").stat().st_size > 10_000
    assert "found" in run.output and "0 other differences" in run.output
    assert (out / "report-phase2" / "report.html").stat().st_size > 10_000
    with open_ledger(f"sqlite:///{out / 'migration' / 'ledger.db'}") as ledger:
        batches = ledger.batches()
        assert sorted(batches["phase"].tolist()) == [1, 2, 3]
        for batch_id in batches["batch_id"]:
            states = ledger.subscriptions(batch_id)["state"]
            # every subscription of every batch was cut over: one whose legacy paid-through
            # was already past is backdated (docs.stripe.com/billing/subscriptions/backdating)
            assert set(states) == {"cut_over"}
            handover = out / "migration" / "batches" / batch_id / "cutover.csv"
            with handover.open() as fh:
                rows = list(csv.DictReader(fh))
            assert len(rows) == (states == "cut_over").sum()
            assert all(r["target_subscription_id"] for r in rows)


def test_shift_dates_moves_every_iso_date_by_whole_months() -> None:
    text = "cutover: 2026-01-01\nnot_before: 2025-11-30 and 2024-12-31, not 20260101"
    assert shift_dates(text, 2) == (
        "cutover: 2026-03-01\nnot_before: 2026-01-30 and 2025-02-28, not 20260101"
    )
