"""The Kill Bill preset end to end: Kill Bill's schema on MariaDB and PostgreSQL, extracted with
examples/killbill/extract_spec.yaml, priced with the catalog imported from the estate's own
catalog XML: every legacy invoice reproduced to the cent except the differences planted on
purpose (tests/support/killbill_estate.py names them); reconcile runs onto a new catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from killbill_estate import PLANTED, load

from shadowbill.cli.app import main
from shadowbill.extract.run import extract
from shadowbill.pricing.catalog import load_catalog
from shadowbill.pricing.engine import price
from shadowbill.snapshot.instants import billed_through
from shadowbill.snapshot.io import read_snapshot

PRESET = Path(__file__).resolve().parents[2] / "examples" / "killbill"

pytestmark = pytest.mark.server


def _extracted(url: str, out: Path) -> Path:
    load(url)
    extract(url, PRESET / "extract_spec.yaml", out, progress=False)
    return out


@pytest.fixture
def mariadb_snapshot(mariadb_url: str, tmp_path: Path) -> Path:
    return _extracted(mariadb_url, tmp_path / "snap_mariadb")


@pytest.fixture
def postgres_snapshot(postgres_url: str, tmp_path: Path) -> Path:
    return _extracted(postgres_url, tmp_path / "snap_postgres")


@pytest.fixture
def legacy_catalog(tmp_path: Path) -> Path:
    """The estate's own Kill Bill catalog, imported as the preset's README says."""
    out = tmp_path / "catalog" / "legacy_catalog.yaml"
    out.parent.mkdir()
    runner = CliRunner()
    args = ["catalog", "import", "--from", "killbill", str(PRESET / "catalog.xml")]
    result = runner.invoke(main, [*args, "--out", str(out), "--tax", "DE=19", "--tax", "JP=10"])
    assert result.exit_code == 0, result.output
    return out


def _differences(snapshot_dir: Path, catalog: Path) -> set[tuple[str, str, str]]:
    """(customer name, local period start date, how) of every legacy invoice not reproduced."""
    snapshot = read_snapshot(snapshot_dir)
    priced = price(snapshot, load_catalog(catalog), end=billed_through(snapshot)).invoices
    key = ["subscription_id", "period_start"]
    legacy = snapshot["invoices"]
    both = legacy.merge(priced, on=key, how="outer", suffixes=("", "_new"), indicator="side")
    subs = snapshot["subscriptions"].merge(snapshot["customers"], on="customer_id")
    names = subs.set_index("subscription_id")[["name", "timezone"]]
    found = set()
    for row in both.itertuples(index=False):
        name, zone = names.loc[row.subscription_id]
        day = pd.Timestamp(row.period_start).tz_convert(zone).date().isoformat()
        if row.side != "both":
            found.add((name, day, f"only in {row.side}"))
        elif (row.subtotal, row.tax, row.total) != (row.subtotal_new, row.tax_new, row.total_new):
            found.add((name, day, f"{row.total} != {row.total_new}"))
    return found


# What the estate plants (killbill_estate.PLANTED), as reconciliation must see it.
EXPECTED = {
    ("Pacific Widgets", "2024-01-14", "only in left_only"),  # trial_invoice
    ("Tokyo Kaisha", "2024-01-05", "only in left_only"),  # trial_invoice
    ("Empire Corp", "2023-12-20", "only in left_only"),  # trial_invoice
    ("Tokyo Kaisha", "2024-03-05", "2661 != 5500"),  # cancellation_credit
    ("Empire Corp", "2024-02-20", "4000 != 5000"),  # item_adjustment
    ("Empire Corp", "2024-04-20", "5500 != 5000"),  # price_typo
}


def test_every_row_is_accounted_for(mariadb_snapshot: Path) -> None:
    manifest = json.loads((mariadb_snapshot / "manifest.json").read_text())
    for name, counts in manifest["tables"].items():
        excluded = counts.get("excluded", 0)
        assert counts["rows_in"] == counts["rows_out"] + counts["quarantined"] + excluded, name
    assert manifest["quarantine"]["rows"] == 0
    assert manifest["tables"]["invoice_lines"]["excluded_by_reason"] == {
        "account credit (customer balance), not an invoice line": 2,
        "item of a void Kill Bill invoice": 1,
    }


@pytest.mark.parametrize("database", ["mariadb", "postgres"])
def test_preset_reproduces_every_legacy_invoice_but_the_planted_differences(
    database: str, request: pytest.FixtureRequest, legacy_catalog: Path
) -> None:
    snapshot_dir = request.getfixturevalue(f"{database}_snapshot")
    assert len(PLANTED) == 4
    assert _differences(snapshot_dir, legacy_catalog) == EXPECTED


def test_mariadb_and_postgres_give_identical_snapshots(
    mariadb_snapshot: Path, postgres_snapshot: Path
) -> None:
    one, two = read_snapshot(mariadb_snapshot), read_snapshot(postgres_snapshot)
    for name, frame in one.tables.items():
        pd.testing.assert_frame_equal(frame, two[name], obj=name)
    pd.testing.assert_frame_equal(one.quarantine, two.quarantine)
    fingerprints = [
        json.loads((d / "manifest.json").read_text())["tables"]["invoices"]["sha256"]
        for d in (mariadb_snapshot, postgres_snapshot)
    ]
    assert fingerprints[0] == fingerprints[1]


def test_reconcile_runs_onto_a_new_catalog(
    mariadb_snapshot: Path, legacy_catalog: Path, tmp_path: Path
) -> None:
    rollout_dir = legacy_catalog.parent
    for name in ("rollout.yaml", "new_catalog.yaml"):
        shutil.copy(PRESET / name, rollout_dir / name)
    out = tmp_path / "report"
    args = ["reconcile", "--snapshot", str(mariadb_snapshot), "--rollout"]
    args += [str(rollout_dir / "rollout.yaml"), "--phase", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 1), result.output
    findings = pd.read_csv(out / "findings.csv")
    legacy_drift = findings[findings["comparison"] == "A"]
    assert set(legacy_drift["cause"]) <= {"extra_line", "price_change", "missing_line"}
    assert (legacy_drift["delta"].abs() > 0).any()  # the planted item adjustment and typo
    assert (out / "report.html").exists()
