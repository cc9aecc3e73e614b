"""The report model: frozen data from which summary.json and the HTML page are rendered."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.html import render_html
from shadowbill.reports.model import ReportData, build_report
from shadowbill.reports.summary import summary_json


@pytest.fixture(scope="module")
def report(result: ReconciliationResult) -> ReportData:
    return build_report(result)


def test_the_model_is_frozen(report: ReportData) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.phase = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.totals[0].legacy = 0  # type: ignore[misc]


def test_to_dict_is_json_data_holding_the_summary(report: ReportData) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    summary = report.summary_dict()
    assert data["phase"] == summary["phase"]
    assert {t["currency"] for t in data["totals"]} == set(summary["totals"])
    for t in data["totals"]:
        assert summary["totals"][t["currency"]]["legacy"] == t["legacy"]
        assert t["legacy"] + t["delta"] == t["new"]


def test_summary_and_page_render_the_same_model(
    result: ReconciliationResult, report: ReportData
) -> None:
    assert summary_json(report) == summary_json(result)
    at = pd.Timestamp("2027-01-01T12:00:00Z")
    assert render_html(result, report=report, rendered_at=at) == render_html(result, rendered_at=at)


def test_money_in_the_model_is_integer_minor_units(report: ReportData) -> None:
    for row in (*report.totals, *report.months, *report.plan_moves, *report.segments):
        for field in ("legacy", "new", "delta"):
            assert type(getattr(row, field)) is int
