"""`shadowbill extract` through the CLI: a snapshot on success, one line and exit 2 on bad input."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from extract_cases import write_folder

from shadowbill.cli.app import main
from shadowbill.snapshot.io import read_snapshot


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_extract_folder_prints_summary(runner, base_rows, tmp_path):
    base_rows["customers"][0]["currency"] = "ZZZ"
    folder = write_folder(tmp_path / "src", base_rows)
    out = tmp_path / "snap"
    result = runner.invoke(main, ["extract", "--source", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "customers" in result.stdout and "unknown_currency" in result.stdout
    snap = read_snapshot(out)
    assert snap.manifest["tables"]["customers"]["quarantined"] == 1


def test_quiet_prints_nothing(runner, base_rows, tmp_path):
    folder = write_folder(tmp_path / "src", base_rows)
    result = runner.invoke(
        main, ["extract", "--source", str(folder), "--out", str(tmp_path / "s"), "--quiet"]
    )
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("shadowbill: error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_database_without_spec(runner, tmp_path):
    db = tmp_path / "legacy.db"
    sqlite3.connect(db).close()
    result = runner.invoke(
        main, ["extract", "--source", f"sqlite:///{db}", "--out", str(tmp_path / "s"), "--quiet"]
    )
    assert "needs --spec" in _one_line_error(result)


def test_bad_spec_names_file_and_line(runner, tmp_path):
    db = tmp_path / "legacy.db"
    sqlite3.connect(db).close()
    spec = tmp_path / "spec.yaml"
    spec.write_text("tables:\n  customers:\n    table: accounts\n    colums: {}\n")
    args = ["extract", "--source", f"sqlite:///{db}", "--spec", str(spec), "--out", str(tmp_path)]
    line = _one_line_error(runner.invoke(main, [*args, "--quiet"]))
    assert f"{spec}:4: tables.customers.colums" in line


def test_missing_table(runner, tmp_path):
    db = tmp_path / "legacy.db"
    sqlite3.connect(db).close()
    spec = tmp_path / "spec.yaml"
    spec.write_text("tables:\n  customers:\n    table: accounts\n")
    args = ["extract", "--source", f"sqlite:///{db}", "--spec", str(spec), "--out", str(tmp_path)]
    line = _one_line_error(runner.invoke(main, args))
    assert "accounts (spec tables.customers)" in line and "no such table" in line


def test_unreachable_database_hides_password(runner, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("tables:\n  customers:\n    table: accounts\n")
    url = "postgresql+psycopg://admin:topsecret@127.0.0.1:1/legacy"
    args = ["extract", "--source", url, "--spec", str(spec), "--out", str(tmp_path / "s")]
    result = runner.invoke(main, args)
    line = _one_line_error(result)
    assert "admin:***@127.0.0.1:1" in line
    assert "topsecret" not in result.output


def test_unknown_column_in_csv(runner, base_rows, tmp_path):
    folder = write_folder(tmp_path / "src", base_rows)
    path = folder / "usage.csv"
    path.write_text(path.read_text().replace("quantity", "qty", 1))
    line = _one_line_error(
        runner.invoke(main, ["extract", "--source", str(folder), "--out", str(tmp_path / "s")])
    )
    assert "usage.csv: unknown column 'qty'" in line
