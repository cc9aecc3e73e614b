"""--rates FILE: one reporting-currency view from finance's rates; without it, no amount is
ever added across currencies (issue 16)."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest

from shadowbill.errors import ReportError
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.html import render_html
from shadowbill.reports.model import build_report
from shadowbill.reports.rates import load_rates, reporting_view

RATES = """date,from,to,rate
2025-12-31,EUR,USD,1.0850
2025-12-31,GBP,USD,1.2712
2026-06-30,EUR,USD,1.2000
2025-06-30,GBP,USD,1.2500
"""


@pytest.fixture
def rates_file(tmp_path: Path) -> Path:
    path = tmp_path / "rates.csv"
    path.write_text(RATES)
    return path


def test_figures_are_converted_exactly_and_the_page_states_the_rates(
    finance_result: ReconciliationResult, rates_file: Path
) -> None:
    report = build_report(finance_result)
    view = reporting_view(report.finance, load_rates(rates_file), dt.date(2026, 1, 1))
    assert view.currency == "USD" and view.as_of == "2025-12-31"
    assert dict(view.rates) == {"EUR": "1.0850", "GBP": "1.2712"}  # the latest before
    mrr = {r.currency: (r.legacy_mrr, r.new_mrr) for r in report.finance.run_rate if not r.segment}
    exact = (
        Fraction(mrr["EUR"][1]) * Fraction("1.0850")
        + Fraction(mrr["GBP"][1]) * Fraction("1.2712")
        + mrr["USD"][1]
    )
    label, _, new = view.rows[0]
    assert label == "MRR at the cut-over" and new == int(exact + Fraction(1, 2))
    page = render_html(finance_result, report=report, reporting=view)
    assert 'id="reporting-currency"' in page
    assert "1 EUR = 1.0850 USD" in page and "as of 2025-12-31" in page


def test_without_rates_no_total_crosses_currencies(finance_result: ReconciliationResult) -> None:
    page = render_html(finance_result)
    assert 'id="reporting-currency"' not in page
    assert "amounts are never added across currencies" in page


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("day,from,to,rate\n", "header lacks date"),
        ("date,from,to,rate\n2025-13-01,EUR,USD,1.1\n", r"rates.csv row 2: date must be"),
        ("date,from,to,rate\n2025-12-01,EUR,USD,-1\n", "row 2: the rate must be above zero"),
        ("date,from,to,rate\n2025-12-01,EUR,USD,1\n2025-12-01,GBP,CHF,1\n", "one reporting"),
        ("date,from,to,rate\n2025-12-01,EUR,USD,1\n2025-12-01,EUR,USD,2\n", "a second rate"),
    ],
)
def test_a_bad_rates_file_is_one_line_naming_file_and_row(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    with pytest.raises(ReportError, match=message):
        load_rates(path)


def test_a_currency_without_a_rate_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,from,to,rate\n2026-05-01,EUR,USD,1.1\n")
    table = load_rates(path)
    with pytest.raises(ReportError, match="no rate from EUR to USD dated on or before 2026-01-01"):
        table.rate("EUR", dt.date(2026, 1, 1))
