"""Usage rows and legacy invoices off their subscription's billing periods are counted and warned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from shadowbill.extract.run import extract
from shadowbill.extract.summary import print_summary

CUSTOMERS = (
    "customer_id,name,email,country,currency,segment,created_at,tax_exempt,timezone\n"
    "c1,Pacific,,US,USD,sales,2024-01-01T00:00:00Z,false,{zone}\n"
)
SUBSCRIPTIONS = (
    "subscription_id,customer_id,status,interval,interval_count,current_period_start,"
    "current_period_end,started_at,canceled_at,trial_end,currency\n"
    # billed at local midnight in Los Angeles on the 14th: 08:00Z in winter, 07:00Z in summer
    "s1,c1,active,month,1,2024-03-14T07:00:00Z,2024-04-14T07:00:00Z,2024-01-14T08:00:00Z,,,USD\n"
)
USAGE = (
    "subscription_id,meter,period_start,period_end,quantity\n"
    "s1,calls,2024-02-14T08:00:00Z,2024-03-14T07:00:00Z,5\n"
    "s1,calls,2024-03-14T08:00:00Z,2024-04-14T07:00:00Z,5\n"  # an hour off after DST
)
INVOICES = (
    "invoice_id,subscription_id,customer_id,period_start,period_end,currency,subtotal,"
    "discount,tax,total,status,issued_at\n"
    "i1,s1,c1,2024-01-14T08:00:00Z,2024-02-14T08:00:00Z,USD,0,0,0,0,paid,2024-01-14T08:00:00Z\n"
    # a DATE read as midnight UTC: the 14th at 00:00Z is the 13th in Los Angeles
    "i2,s1,c1,2024-02-14T00:00:00Z,2024-03-14T00:00:00Z,USD,0,0,0,0,paid,2024-02-14T08:00:00Z\n"
)


def _estate(folder: Path, zone: str) -> Path:
    folder.mkdir()
    (folder / "customers.csv").write_text(CUSTOMERS.format(zone=zone))
    (folder / "subscriptions.csv").write_text(SUBSCRIPTIONS)
    (folder / "usage.csv").write_text(USAGE)
    (folder / "invoices.csv").write_text(INVOICES)
    return folder


@pytest.mark.parametrize("layout", ["buckets", "single"])
def test_off_boundary_rows_are_counted_in_the_manifest(tmp_path: Path, layout: str) -> None:
    source = _estate(tmp_path / "estate", "America/Los_Angeles")
    result = extract(str(source), None, tmp_path / "snap", progress=False, layout=layout)  # type: ignore[arg-type]
    expected = {"invoices_off_period_boundary": 1, "usage_off_period_boundary": 1}
    assert result.warnings == expected
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert manifest["warnings"] == expected
    console = Console(record=True, width=200)
    print_summary(result, console)
    assert "1 usage rows start on no billing period boundary" in console.export_text()


def test_customer_zone_decides_what_a_boundary_is(tmp_path: Path) -> None:
    source = _estate(tmp_path / "estate", "")  # no zone: UTC, where 08:00Z stays 08:00Z
    result = extract(str(source), None, tmp_path / "snap", progress=False)
    assert result.warnings == {"invoices_off_period_boundary": 1, "usage_off_period_boundary": 0}


def test_unknown_customer_zone_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    source = _estate(tmp_path / "estate", "Mars/Olympus")
    result = extract(str(source), None, tmp_path / "snap", progress=False)
    assert result.quarantine_by_table["customers"] == {"wrong_type": 1}
    assert result.counts["subscriptions"].quarantined == 1  # its customer is quarantined
