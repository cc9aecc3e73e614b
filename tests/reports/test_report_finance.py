"""The report a controller signs (issue 16): revenue net of tax, history apart from
projection, the run-rate at the cut-over, names people use, the customers changing."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from shadowbill.money import format_minor
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.communications import customers_changing, write_customers_changing
from shadowbill.reports.html import render_html
from shadowbill.reports.model import ReportData, build_report

RENDERED = pd.Timestamp("2027-02-03T04:05:00Z")


@pytest.fixture(scope="module")
def report(finance_result: ReconciliationResult) -> ReportData:
    return build_report(finance_result)


@pytest.fixture(scope="module")
def page(finance_result: ReconciliationResult, report: ReportData) -> str:
    return render_html(finance_result, report=report, rendered_at=RENDERED)


def _section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}"')
    return page[start : page.index("</section>", start)]


def test_page_states_data_as_of_generation_time_and_cutover(
    page: str, finance_result: ReconciliationResult
) -> None:
    head = page[: page.index("</header>")]
    assert "report generated <strong>2027-02-03 04:05 UTC</strong>" in head
    as_of = pd.Timestamp(finance_result.generated_at)
    assert f"Data as of <strong>{as_of:%Y-%m-%d}" in head
    assert "cut-over <strong>2026-01-01</strong>" in head  # the demo's phase 2 date


def test_history_and_projection_add_up_to_the_combined_figures_net_of_tax(
    report: ReportData, finance_result: ReconciliationResult
) -> None:
    f = report.finance
    mapped = finance_result.customers[finance_result.customers["status"] == "mapped"]
    gross = mapped.groupby("currency")[["legacy_total", "new_total"]].sum()
    for h, p, c in zip(
        f.for_basis("history"), f.for_basis("projection"), f.for_basis("combined"), strict=True
    ):
        assert h.currency == p.currency == c.currency
        for field in ("legacy", "new", "legacy_tax", "new_tax", "actual", "actual_tax"):
            assert getattr(h, field) + getattr(p, field) == getattr(c, field), field
        assert p.actual == 0  # nothing is issued after the cut-over
        assert c.legacy + c.legacy_tax == int(gross.loc[c.currency, "legacy_total"])
        assert c.new + c.new_tax == int(gross.loc[c.currency, "new_total"])


def test_tax_is_never_a_cause_of_revenue_change(page: str) -> None:
    causes = _section(page, "causes")
    table = causes[causes.index('id="cause-pivot"') : causes.index("</table>")]
    rows = re.findall(r"<tr[^>]*><td>([^<]+)", table)
    assert "Tax" not in rows and "Tax difference " in rows
    assert "not a cause of revenue change" in table


def test_run_rate_per_currency_and_segment_with_arr_and_the_next_twelve_months(
    page: str, report: ReportData, finance_result: ReconciliationResult
) -> None:
    section = _section(page, "run-rate")
    by = finance_result.run_rate.groupby("currency")[["legacy_mrr", "new_mrr"]].sum()
    for cur, row in by.iterrows():
        assert format_minor(int(row.new_mrr), str(cur), with_code=False) in section
        assert format_minor(12 * int(row.legacy_mrr), str(cur), with_code=False) in section
    segments = {r.segment for r in report.finance.run_rate}
    assert {"", "sales", "self_serve"} <= segments
    assert section.count("<svg") == len(by)  # one bridge chart per currency
    for cur in by.index:
        steps = [s for s in report.finance.bridge if s.currency == cur]
        assert steps[0].step == "legacy_mrr" and steps[-1].step == "new_mrr"
        assert steps[0].amount + sum(s.amount for s in steps[1:-1]) == steps[-1].amount


def test_recognized_revenue_is_shown_beside_billings(page: str, report: ReportData) -> None:
    section = _section(page, "recognized")
    assert section.count("<svg") == len({m.currency for m in report.finance.months})
    for cur in {m.currency for m in report.finance.months}:
        months = [m for m in report.finance.months if m.currency == cur]
        assert sum(m.new_billed for m in months) == sum(m.new_recognized for m in months)


def test_plan_moves_are_grouped_by_rule_with_names_and_customers(
    page: str, report: ReportData, finance_result: ReconciliationResult
) -> None:
    section = _section(page, "plans")
    moves = report.finance.rule_moves
    keys = [(m.rule_id, m.currency) for m in moves]
    assert len(keys) == len(set(keys))  # no repeated rows
    mapped = finance_result.customers[finance_result.customers["status"] == "mapped"]
    assert sum(m.customers for m in moves) == len(mapped)
    assert "Essential monthly per seat" in section  # the catalog's nickname
    assert "essential_month" in section  # the price id stays visible in the detail
    first = moves[0]
    assert f"<summary>{first.customers} customer" in section
    assert f'data-customer="{first.sample[0][0]}"' in section


def test_glossary_explains_the_terms_that_stay(page: str) -> None:
    glossary = _section(page, "glossary")
    for term in ("Cmp. A, B, C", "Finding", "Minor units", "Net of tax", "MRR, ARR"):
        assert f"<dt>{term}</dt>" in glossary


def test_run_counts_show_instants_as_dates_not_epoch_seconds(
    page: str, finance_result: ReconciliationResult
) -> None:
    seconds = finance_result.counts["history_until"]
    signoff = _section(page, "signoff")
    assert f"{seconds:,}" not in signoff
    until = pd.Timestamp(seconds, unit="s", tz="UTC")
    assert re.search(rf"history until</th><td class=\"num\">{until:%Y-%m-%d}", signoff)


def test_customers_changing_lists_every_monthly_change_beyond_the_threshold(
    finance_result: ReconciliationResult,
) -> None:
    frame = customers_changing(finance_result, threshold_bp=100)
    rr = finance_result.run_rate
    legacy, new = rr["legacy_mrr"].astype("int64"), rr["new_mrr"].astype("int64")
    moved = (new - legacy).abs() * 10_000 >= 100 * legacy  # at least 1%
    expected = set(rr.loc[moved & (new != legacy) & (legacy > 0), "customer_id"])
    assert expected and expected <= set(frame["customer_id"])
    assert (
        frame["change_minor"] == frame["new_monthly_minor"] - frame["legacy_monthly_minor"]
    ).all()
    assert (frame["causes"] != "").all()
    assert not frame["causes"].str.contains("Tax").any()
    assert set(frame["direction"]) <= {"increase", "decrease"}
    everyone = customers_changing(finance_result, threshold_bp=0)
    assert len(everyone) == int((new != legacy).sum())


def test_customers_changing_csv_is_spreadsheet_safe(
    finance_result: ReconciliationResult, tmp_path: Path
) -> None:
    customers = finance_result.customers.copy()
    frame = customers_changing(finance_result)
    hostile = '=HYPERLINK("http://example.invalid","x")'
    customers.loc[customers["customer_id"] == frame["customer_id"].iloc[0], "name"] = hostile
    out = write_customers_changing(
        customers_changing(replace(finance_result, customers=customers)),
        tmp_path / "customers_changing.csv",
    )
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["name"] == "'" + hostile
    assert all(not r["name"].startswith(("=", "+", "-", "@")) for r in rows)
    assert rows[0]["change_minor"].lstrip("-").isdigit()  # numbers stay numbers
