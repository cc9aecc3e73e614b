"""A folder of canonical CSV/Parquet files: each kind of bad input lands in quarantine or errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from extract_cases import BASE_ROWS, assert_conserved, quarantined, write_folder

from shadowbill.errors import InputError, SourceError
from shadowbill.extract.run import extract
from shadowbill.snapshot.io import read_snapshot
from shadowbill.snapshot.tables import TABLES


def test_the_valid_company_is_kept_whole(extract_rows, base_rows):
    result, snap = extract_rows(base_rows)
    assert snap.quarantine.empty
    for name, rows in base_rows.items():
        assert result.counts[name].rows_out == len(rows)
    customers = snap["customers"].set_index("customer_id")
    assert customers.loc["C2", "created_at"] == pd.Timestamp("2024-01-02T00:00:00Z")
    assert bool(customers.loc["C3", "tax_exempt"]) is True
    assert snap["tax_rates"]["percentage"].tolist() == ["10"]  # "10.0" normalized, exactly
    lines = snap["invoice_lines"].set_index("line_id")
    assert lines.loc["L2", "unit_amount_decimal"] == "1"
    assert lines.loc["L6", "amount"] == 390000


def test_unknown_column_is_an_error_naming_file_and_column(csv_folder, base_rows, tmp_path):
    folder = csv_folder(base_rows)
    path = folder / "customers.csv"
    text = path.read_text().splitlines()
    text[0] += ",vip"
    text[1:] = [line + ",x" for line in text[1:]]
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError) as err:
        extract(str(folder), None, tmp_path / "snap", progress=False)
    message = str(err.value)
    assert "customers.csv" in message and "'vip'" in message and "\n" not in message


def test_missing_required_column_is_an_error_naming_file_and_column(base_rows, tmp_path):
    folder = write_folder(tmp_path / "source", base_rows)
    columns = [c for c in TABLES["invoices"].column_names if c != "total"]
    rows = [{k: v for k, v in r.items() if k != "total"} for r in base_rows["invoices"]]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "invoices.csv", index=False)
    with pytest.raises(InputError, match=r"invoices\.csv: missing required column 'total'"):
        extract(str(folder), None, tmp_path / "snap", progress=False)


def test_missing_optional_column_is_empty(base_rows, tmp_path):
    folder = write_folder(tmp_path / "source", base_rows)
    frame = pd.DataFrame(base_rows["customers"]).drop(columns="email")
    frame.to_csv(folder / "customers.csv", index=False)
    result = extract(str(folder), None, tmp_path / "snap", progress=False)
    snap = read_snapshot(result.out_dir)
    assert snap["customers"]["email"].isna().all()
    assert snap.quarantine.empty


BAD_CELLS = [
    ("subscription_items", "quantity", "three", "wrong_type"),
    ("invoices", "subtotal", "118.20", "wrong_type"),  # minor units are whole numbers
    ("customers", "created_at", "yesterday", "wrong_type"),
    ("customers", "tax_exempt", "maybe", "wrong_type"),
    ("tax_rates", "percentage", "ten", "wrong_type"),
    ("customers", "created_at", "2024-01-01 00:00:00", "naive_timestamp"),
    ("subscription_items", "quantity", "-2", "negative_value"),
    ("usage", "quantity", "-120", "negative_value"),
    ("customers", "currency", "XYZ", "unknown_currency"),
    ("subscriptions", "status", "actve", "invalid_enum"),
    ("customers", "name", "", "missing_value"),
    ("usage", "period_end", "2023-12-01T00:00:00Z", "period_out_of_order"),
]
_KEY_TWEAK = {  # how a copied row gets a key of its own
    "customers": ("customer_id",),
    "subscriptions": ("subscription_id",),
    "subscription_items": ("item_id",),
    "usage": ("meter",),
    "invoices": ("invoice_id",),
    "tax_rates": ("tax_rate_id",),
}


def test_each_bad_cell_quarantines_only_its_row(extract_rows, base_rows):
    """Every case of BAD_CELLS planted in a row of its own (a copy of a valid row), in one run."""
    planted = {}
    for n, (table, column, value, reason) in enumerate(BAD_CELLS):
        row = dict(base_rows[table][0], **{k: f"X{n}" for k in _KEY_TWEAK[table]})
        row[column] = value
        base_rows[table].append(row)
        planted[(table, f"{table}.csv row {len(base_rows[table])}")] = (column, reason)
    result, snap = extract_rows(base_rows)
    q = snap.quarantine.set_index(["table", "source_ref"])
    for (table, ref), (column, reason) in planted.items():
        assert q.loc[(table, ref), "reason"] == reason, (table, column)
        assert column in q.loc[(table, ref), "detail"] and table in q.loc[(table, ref), "detail"]
    # nothing else is quarantined: planted rows have no children
    assert len(snap.quarantine) == len(planted)
    assert_conserved(result)


def test_non_utf8_bytes_quarantine_only_their_row(csv_folder, base_rows, tmp_path):
    folder = csv_folder(base_rows)
    path = folder / "customers.csv"
    path.write_bytes(path.read_bytes().replace(b"Souk Co", b"Souk \xe9\xff Co"))
    result = extract(str(folder), None, tmp_path / "snap", progress=False)
    snap = read_snapshot(result.out_dir)
    assert quarantined(snap, "customers") == {"customers.csv row 3": "not_utf8"}
    row = snap.quarantine.iloc[0]
    assert "name" in row["detail"] and "\\xE9\\xFF" in row["detail"]
    assert "Souk \\\\xE9\\\\xFF Co" in row["row"]  # the bytes are shown, escaped, in the JSON
    assert snap["customers"]["customer_id"].tolist() == ["C1", "C2"]
    assert_conserved(result)


def test_utf16_file_is_an_error(csv_folder, base_rows, tmp_path):
    folder = csv_folder(base_rows)
    path = folder / "customers.csv"
    path.write_bytes(path.read_text().encode("utf-16"))
    with pytest.raises(InputError, match=r"customers\.csv: the file is UTF-16"):
        extract(str(folder), None, tmp_path / "snap", progress=False)


def test_row_with_wrong_number_of_fields_is_quarantined(csv_folder, base_rows, tmp_path):
    folder = csv_folder(base_rows)
    path = folder / "subscription_items.csv"
    lines = path.read_text().splitlines()
    lines.insert(2, "I9,S1,pro_month,1")
    path.write_text("\n".join(lines) + "\n")
    result = extract(str(folder), None, tmp_path / "snap", progress=False)
    snap = read_snapshot(result.out_dir)
    refs = quarantined(snap, "subscription_items")
    assert refs == {"subscription_items.csv row 2": "malformed_row"}
    assert result.counts["subscription_items"].rows_in == len(base_rows["subscription_items"]) + 1
    assert_conserved(result)


def test_duplicate_ids_quarantine_every_copy(extract_rows, base_rows):
    base_rows["customers"].append(dict(base_rows["customers"][0], name="Acme again"))
    result, snap = extract_rows(base_rows)
    assert quarantined(snap, "customers") == {
        "customers.csv row 1": "duplicate_key",
        "customers.csv row 4": "duplicate_key",
    }
    # everything that hangs off C1 is quarantined with the parent named
    assert set(quarantined(snap, "subscriptions").values()) == {"parent_quarantined"}
    assert "customer_id 'C1'" in snap.quarantine.query("table == 'subscriptions'")["detail"].iloc[0]
    assert "V1" not in snap["invoices"]["invoice_id"].tolist()
    assert_conserved(result)


def test_dangling_foreign_key(extract_rows, base_rows):
    base_rows["usage"][0]["subscription_id"] = "S404"
    result, snap = extract_rows(base_rows)
    assert quarantined(snap, "usage") == {"usage.csv row 1": "dangling_foreign_key"}
    assert "S404" in snap.quarantine["detail"].iloc[0]
    assert_conserved(result)


def test_overlapping_item_history_quarantines_the_item(extract_rows, base_rows):
    base_rows["subscription_items"][0]["valid_to"] = "2024-03-01T00:00:00Z"  # overlaps row 2
    result, snap = extract_rows(base_rows)
    assert quarantined(snap, "subscription_items") == {
        "subscription_items.csv row 1": "overlapping_history",
        "subscription_items.csv row 2": "overlapping_history",
    }
    assert set(snap["subscription_items"]["item_id"]) == {"I2", "I3"}
    assert_conserved(result)


def test_invoice_whose_lines_do_not_add_up_takes_its_lines(extract_rows, base_rows):
    base_rows["invoice_lines"][1]["amount"] = "121"  # usage line of V1: lines now sum to 11821
    result, snap = extract_rows(base_rows)
    assert quarantined(snap, "invoices") == {"invoices.csv row 1": "invoice_lines_mismatch"}
    assert set(quarantined(snap, "invoice_lines").values()) == {"invoice_lines_mismatch"}
    assert len(quarantined(snap, "invoice_lines")) == 3  # L1, L2 and the discount line L3
    detail = snap.quarantine.query("table == 'invoices'")["detail"].iloc[0]
    assert "11821" in detail and "11820" in detail
    assert_conserved(result)


def test_invoice_total_mismatch(extract_rows, base_rows):
    base_rows["invoices"][1]["total"] = "12981"
    result, snap = extract_rows(base_rows)
    assert quarantined(snap, "invoices") == {"invoices.csv row 2": "invoice_total_mismatch"}
    assert set(quarantined(snap, "invoice_lines").values()) == {"parent_quarantined"}
    assert_conserved(result)


def test_messy_folder_conserves_every_row(extract_rows, base_rows):
    rows = base_rows
    rows["customers"][1]["currency"] = "YEN"  # unknown currency: C2, S2, I2, V2, L4, L5
    rows["customers"].append(dict(rows["customers"][2]))  # duplicate C3: S3, I3, V3, L6
    rows["customers"].append(dict(rows["customers"][0], customer_id="C4", segment="web"))
    rows["subscriptions"].append(dict(rows["subscriptions"][0], subscription_id="S5"))
    rows["subscriptions"][-1]["customer_id"] = "C404"
    rows["subscription_items"][1]["quantity"] = "-5"
    rows["discounts"][0]["starts_at"] = "2024-01-01 00:00"
    rows["usage"].append(dict(rows["usage"][0], quantity="lots"))
    rows["invoice_lines"].append(dict(rows["invoice_lines"][0], line_id="L9", invoice_id="V404"))
    rows["tax_rates"].append({"tax_rate_id": "", "percentage": "20", "inclusive": "false"})
    result, snap = extract_rows(rows)
    assert_conserved(result)
    for name, table_rows in rows.items():
        assert result.counts[name].rows_in == len(table_rows)
        assert len(snap[name]) == result.counts[name].rows_out
    assert snap["customers"]["customer_id"].tolist() == ["C1"]
    assert snap["subscriptions"]["subscription_id"].tolist() == ["S1"]
    assert snap["invoices"]["invoice_id"].tolist() == ["V1"]  # its lines still add up
    by_reason = result.quarantine_by_reason
    for reason in (
        "unknown_currency",
        "duplicate_key",
        "invalid_enum",
        "dangling_foreign_key",
        "negative_value",
        "naive_timestamp",
        "wrong_type",
        "missing_value",
        "parent_quarantined",
    ):
        assert by_reason.get(reason, 0) > 0, reason
    assert sum(by_reason.values()) == len(snap.quarantine)
    manifest = snap.manifest["tables"]
    assert all(t["rows_in"] == t["rows_out"] + t["quarantined"] for t in manifest.values())


def test_parquet_folder_reads_like_csv(extract_rows, base_rows, tmp_path):
    _, from_csv = extract_rows(base_rows)
    folder = tmp_path / "parquet"
    folder.mkdir()
    for name, frame in from_csv.tables.items():
        table = pa.Table.from_pandas(frame, schema=TABLES[name].arrow_schema, preserve_index=False)
        pq.write_table(table, folder / f"{name}.parquet")
    result = extract(str(folder), None, tmp_path / "snap2", progress=False)
    from_parquet = read_snapshot(result.out_dir)
    for name in TABLES:
        pd.testing.assert_frame_equal(from_parquet[name], from_csv[name])


def test_parquet_with_naive_timestamps_quarantines(base_rows, tmp_path):
    folder = tmp_path / "parquet"
    folder.mkdir()
    frame = pd.DataFrame(base_rows["customers"]).assign(
        created_at=pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        tax_exempt=[False, False, True],
    )
    frame.to_parquet(folder / "customers.parquet")
    result = extract(str(folder), None, tmp_path / "snap", progress=False)
    snap = read_snapshot(result.out_dir)
    assert set(quarantined(snap, "customers").values()) == {"naive_timestamp"}
    assert_conserved(result)


def test_folder_errors(tmp_path, base_rows):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no canonical CSV or Parquet files"):
        extract(str(empty), None, tmp_path / "snap", progress=False)
    folder = write_folder(tmp_path / "src", base_rows)
    (folder / "acounts.csv").write_text("a\n1\n")
    with pytest.raises(InputError, match=r"acounts\.csv: not a canonical table file"):
        extract(str(folder), None, tmp_path / "snap", progress=False)
    with pytest.raises(SourceError, match="no such folder"):
        extract(str(tmp_path / "nowhere"), None, tmp_path / "snap", progress=False)
    assert BASE_ROWS["customers"][0]["customer_id"] == "C1"  # fixtures copy, never mutate


def test_spec_with_a_folder_is_refused(csv_folder, base_rows, tmp_path):
    folder = csv_folder(base_rows)
    spec = tmp_path / "spec.yaml"
    spec.write_text("tables: {}\n")
    with pytest.raises(InputError, match="a spec maps a database"):
        extract(str(folder), spec, tmp_path / "snap", progress=False)


def test_source_row_is_kept_as_given(extract_rows, base_rows):
    base_rows["customers"][0]["tax_exempt"] = "perhaps"
    _, snap = extract_rows(base_rows)
    assert '"tax_exempt":"perhaps"' in snap.quarantine["row"].iloc[0]


def test_refs_count_data_rows_in_files(extract_rows, base_rows, tmp_path: Path):
    base_rows["invoice_lines"][5]["kind"] = "bonus"
    _, snap = extract_rows(base_rows)
    refs = quarantined(snap, "invoice_lines")
    assert refs["invoice_lines.csv row 6"] == "invalid_enum"


def test_malformed_row_with_bad_bytes(csv_folder, base_rows, tmp_path, capfd):
    folder = csv_folder(base_rows)
    path = folder / "customers.csv"
    lines = path.read_bytes().split(b"\n")
    lines.insert(2, b"C9,Caf\xe9 SA,,FR,EUR,sales")
    path.write_bytes(b"\n".join(lines))
    result = extract(str(folder), None, tmp_path / "snap", progress=False)
    snap = read_snapshot(result.out_dir)
    assert quarantined(snap, "customers") == {"customers.csv row 2": "malformed_row"}
    assert "Caf\\xE9 SA" in snap.quarantine["detail"].iloc[0]
    assert capfd.readouterr().err == ""  # no decoding noise from the CSV reader
    assert_conserved(result)
