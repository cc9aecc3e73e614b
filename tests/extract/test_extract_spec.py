"""The extract spec: valid specs load; every mistake is named by file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shadowbill.errors import ExtractSpecError
from shadowbill.extract.spec import load_extract_spec

VALID = """\
source: demo-legacy
timezone: Europe/Berlin
chunk_size: 5000
tables:
  customers:
    table: accounts
    source_key: acct_no
    columns:
      customer_id: acct_no
      name: company_name
      country: {from: country_code, transform: upper}
      currency: {from: billing_currency, transform: upper}
      segment: {from: channel, map: {WEB: self_serve, SALES: sales}}
      created_at: {from: opened_epoch, type: epoch_seconds}
      tax_exempt: {from: vat_exempt, map: {Y: true, N: false}}
  invoices:
    query: "SELECT b.*, a.billing_currency AS cur FROM bills b JOIN accounts a ON a.acct_no = b.acct_no"
    columns:
      subtotal: {from: subtotal_usd, type: major_units, currency_from: cur}
      tax: {from: tax, type: major_units, currency: usd}
      status: {value: paid}
      period_end: {from: period_to, type: timestamp, null_if: [0, "1970-01-01"]}
cutover:
  stop_billing: "UPDATE plans SET on = 0 WHERE ref IN :subscription_ids"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_spec_loads(tmp_path):
    spec = load_extract_spec(write(tmp_path, VALID))
    assert spec.source == "demo-legacy" and spec.timezone == "Europe/Berlin"
    assert spec.chunk_size == 5000
    customers = spec.tables["customers"]
    assert customers.columns["customer_id"].from_ == "acct_no"  # the short form
    assert customers.columns["tax_exempt"].map_text == {"Y": "true", "N": "false"}
    assert customers.key_source_column("customer_id") == "acct_no"
    invoices = spec.tables["invoices"]
    assert invoices.source_label == "query"
    assert invoices.columns["status"].is_constant
    assert invoices.columns["tax"].currency == "USD"
    assert invoices.columns["period_end"].null_if_text == ["0", "1970-01-01"]
    assert spec.cutover is not None and "subscription_ids" in str(spec.cutover.stop_billing)
    assert spec.locate("tables", "invoices", "columns", "tax").endswith(
        "spec.yaml:20: tables.invoices.columns.tax"
    )


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "tables:\n  customers:\n    table: a\n  acounts:\n    table: b\n",
            4,
            "tables.acounts: unknown canonical table",
        ),
        (
            "tables:\n  customers:\n    table: a\n    columns:\n      emial: x\n",
            5,
            "tables.customers.columns.emial: unknown column of customers",
        ),
        (
            "tables:\n  invoices:\n    table: a\n    columns:\n      total: {from: t, type: epoch_seconds}\n",
            5,
            "type epoch_seconds cannot fill this column (use major_units or minor_units)",
        ),
        (
            "tables:\n  invoices:\n    table: a\n    columns:\n      total: {from: t, type: major_units}\n",
            5,
            "needs exactly one of 'currency' or 'currency_from'",
        ),
        (
            "tables:\n  invoices:\n    table: a\n    columns:\n      total: {from: t, tranform: upper}\n",
            5,
            "tables.invoices.columns.total.tranform: unknown key",
        ),
        (
            "tables:\n  invoices:\n    table: a\n    columns:\n      total: {from: t, value: 3}\n",
            5,
            "exactly one of 'from'",
        ),
        (
            "tables:\n  invoices:\n    table: a\n    query: SELECT 1\n",
            2,
            "exactly one of 'table'",
        ),
        ("tables:\n  invoices:\n    columns: {}\n", 2, "exactly one of 'table'"),
        ("timezone: Mars/Olympus\ntables: {}\n", 1, "not an IANA time zone"),
        (
            "tables:\n  invoices:\n    table: a\n    columns:\n"
            "      total: {from: t, type: major_units, currency: ZZZ}\n",
            5,
            "'ZZZ' is not an ISO 4217 currency code",
        ),
        (
            "tables:\n  subscriptions:\n    table: a\n    columns:\n      interval_count: 1\n",
            5,
            "use {value: ...} for a constant",
        ),
        ("tables:\n  customers:\n    table: a\n  customers:\n    table: b\n", 4, "duplicate key"),
        ("chunk_size: 0\ntables: {}\n", 1, "chunk_size"),
        ("sources: x\ntables: {}\n", 1, "sources: unknown key"),
        ("source: x\n", None, "tables: required key is missing"),
    ],
)
def test_spec_errors_name_file_line_and_key(tmp_path, text, line, needle):
    path = write(tmp_path, text)
    with pytest.raises(ExtractSpecError) as err:
        load_extract_spec(path)
    message = str(err.value)
    assert needle in message
    if line is not None:
        assert f"{path}:{line}:" in message
    assert "\n" not in message


def test_missing_spec_file(tmp_path):
    with pytest.raises(ExtractSpecError, match="file not found"):
        load_extract_spec(tmp_path / "nope.yaml")
