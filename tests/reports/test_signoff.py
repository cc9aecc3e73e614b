"""shadowbill signoff: a record of who signed a report, kept beside it, on the page and in
the ledger; refused when the report changed since it was written (issue 16)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from shadowbill.cli.app import main
from shadowbill.errors import ReportError
from shadowbill.ledger import open_ledger
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reports.signoff import sign_off
from shadowbill.reports.write import write_reports


@pytest.fixture
def report_dir(passing_result: ReconciliationResult, tmp_path: Path) -> Path:
    write_reports(passing_result, tmp_path / "report")
    return tmp_path / "report"


def test_signoff_is_kept_beside_the_report_and_shown_on_the_page(
    report_dir: Path, passing_result: ReconciliationResult
) -> None:
    page = (report_dir / "report.html").read_text("utf-8")
    assert "No sign-off recorded yet." in page
    first = sign_off(report_dir, "<b>Ana</b> Controller", "Financial controller", "approved")
    sign_off(report_dir, "Ben Auditor", "Internal audit")
    records = json.loads((report_dir / "signoff.json").read_text("utf-8"))["signoffs"]
    assert [r["name"] for r in records] == ["<b>Ana</b> Controller", "Ben Auditor"]
    summary = (report_dir / "summary.json").read_bytes()
    assert first["fingerprints"]["summary.json"] == hashlib.sha256(summary).hexdigest()
    for key, digest in passing_result.fingerprints.items():
        assert first["fingerprints"][key] == digest
    page = (report_dir / "report.html").read_text("utf-8")
    assert "&lt;b&gt;Ana&lt;/b&gt; Controller" in page and "<b>Ana</b>" not in page
    assert "Ben Auditor" in page and "No sign-off recorded yet." not in page
    assert page.count('id="signoffs"') == 1
    # a report written again into the folder for the same inputs keeps showing them
    write_reports(passing_result, report_dir)
    assert "Ben Auditor" in (report_dir / "report.html").read_text("utf-8")


def test_a_changed_report_is_refused(report_dir: Path) -> None:
    summary = report_dir / "summary.json"
    data = json.loads(summary.read_text("utf-8"))
    data["fingerprints"]["snapshot"] = "0" * 64
    summary.write_text(json.dumps(data), "utf-8")
    with pytest.raises(ReportError, match=r"refused: summary.json .* changed"):
        sign_off(report_dir, "Ana", "Controller")
    assert not (report_dir / "signoff.json").exists()


def test_a_folder_signed_for_other_inputs_is_refused(
    report_dir: Path, passing_result: ReconciliationResult
) -> None:
    sign_off(report_dir, "Ana", "Controller")
    other = {**passing_result.fingerprints, "snapshot": "f" * 64}
    write_reports(replace(passing_result, fingerprints=other), report_dir)
    assert "Ana" not in (report_dir / "report.html").read_text("utf-8").split("Recorded")[1][:400]
    with pytest.raises(ReportError, match="signed this folder for other inputs \\(snapshot\\)"):
        sign_off(report_dir, "Ben", "Auditor")


def test_cli_signs_into_the_ledger_and_refuses_in_one_line(
    report_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run = CliRunner().invoke(
        main,
        [
            "signoff",
            str(report_dir),
            "--name",
            "Ana",
            "--role",
            "CFO",
            "--note",
            "ok",
            "--ledger",
            url,
        ],
    )
    assert run.exit_code == 0, run.output
    assert "signed phase 2 (passed) as Ana, CFO" in run.output
    with open_ledger(url) as ledger:
        kept = ledger.signoffs()
    assert kept["name"].tolist() == ["Ana"] and kept["note"].tolist() == ["ok"]
    (report_dir / "findings.csv").write_text("tampered\n")
    run = CliRunner().invoke(main, ["signoff", str(report_dir), "--name", "B", "--role", "R"])
    assert run.exit_code == 2
    assert "findings.csv" in run.output and "Traceback" not in run.output
    assert len(run.output.strip().splitlines()) == 1
