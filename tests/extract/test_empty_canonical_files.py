"""Canonical files with a header and no rows (an estate with no invoices yet), and major units in files."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowbill.extract.run import extract
from shadowbill.snapshot.tables import TABLES


def _header_only(folder: Path, *names: str) -> None:
    for name in names:
        (folder / f"{name}.csv").write_text(",".join(TABLES[name].column_names) + "\n")


@pytest.mark.parametrize("layout", ["buckets", "single"])
def test_header_only_subscriptions_and_invoices_extract_empty(tmp_path: Path, layout: str) -> None:
    source = tmp_path / "estate"
    source.mkdir()
    _header_only(source, "customers", "subscriptions", "invoices", "invoice_lines")
    result = extract(str(source), None, tmp_path / "snap", progress=False, layout=layout)  # type: ignore[arg-type]
    assert result.counts["subscriptions"].rows_in == 0
    assert result.counts["invoices"].rows_out == 0
    assert result.quarantine_by_reason == {}


def test_invoice_in_major_units_is_quarantined_not_read_as_cents(tmp_path: Path) -> None:
    source = tmp_path / "estate"
    source.mkdir()
    (source / "customers.csv").write_text(
        "customer_id,name,email,country,currency,segment,created_at,tax_exempt\n"
        "c1,Acme,,US,USD,sales,2024-01-01T00:00:00Z,false\n"
    )
    (source / "subscriptions.csv").write_text(
        "subscription_id,customer_id,status,interval,interval_count,current_period_start,"
        "current_period_end,started_at,canceled_at,trial_end,currency\n"
        "s1,c1,active,month,1,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z,"
        "2024-01-01T00:00:00Z,,,USD\n"
    )
    (source / "invoices.csv").write_text(
        "invoice_id,subscription_id,customer_id,period_start,period_end,currency,subtotal,"
        "discount,tax,total,status,issued_at\n"
        "i1,s1,c1,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z,USD,195.00,0.00,0.00,195.00,paid,"
        "2024-01-01T00:00:00Z\n"
    )
    result = extract(str(source), None, tmp_path / "snap", progress=False)
    assert result.counts["invoices"].quarantined == 1
    assert result.quarantine_by_reason == {"wrong_type": 1}
    import pandas as pd

    quarantine = pd.read_parquet(tmp_path / "snap" / "quarantine.parquet")
    assert "looks like major units" in quarantine["detail"].iloc[0]
