"""Reconciling the demo company's phase 2: causes add up, A finds exactly the planted errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from demo_companies import demo_company
from fixtures_golden import Golden

from shadowbill.cli.app import main
from shadowbill.demo.run import examples_dir
from shadowbill.pricing.engine import price
from shadowbill.reconcile.findings import WATERFALL_CAUSES
from shadowbill.reconcile.result import ReconciliationResult
from shadowbill.reconcile.run import Options, reconcile_files
from shadowbill.snapshot.io import read_snapshot
from shadowbill.translate.rollout import load_rollout

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

EXAMPLES = examples_dir()


@pytest.fixture(scope="module")
def demo() -> tuple[Path, Path]:
    """A small demo company extracted into a snapshot: (snapshot dir, planted errors csv)."""
    company = demo_company(300, 8, 11)
    return company.snapshot, company.made.errors_path


@pytest.fixture(scope="module")
def result(demo: tuple[Path, Path]) -> ReconciliationResult:
    snapshot, _ = demo
    return reconcile_files(
        snapshot,
        EXAMPLES / "rollout.yaml",
        2,
        EXAMPLES / "policy.yaml",
        options=Options(diff_customers=5),
    )


def test_every_difference_is_explained(result: ReconciliationResult) -> None:
    findings = result.all_findings()
    b = findings[findings["comparison"] == "B"]
    assert not b.empty
    assert (b["cause"] != "unexplained").all()
    assert result.verdict.passed, result.verdict.failures


def test_causes_add_up_to_each_customers_change(result: ReconciliationResult) -> None:
    w = result.waterfall
    causes = (
        w[w["cause"].isin(WATERFALL_CAUSES)].groupby(["customer_id", "currency"])["amount"].sum()
    )
    ends = w[w["cause"].isin(["legacy_total", "new_total"])].pivot_table(
        index=["customer_id", "currency"], columns="cause", values="amount", aggfunc="sum"
    )
    change = (ends["new_total"] - ends["legacy_total"]).astype("int64")
    joined = change.to_frame("change").join(causes.rename("causes")).fillna(0)
    assert (joined["change"] == joined["causes"]).all()
    cust = result.customers[result.customers["status"] == "mapped"].set_index(
        ["customer_id", "currency"]
    )
    assert (cust["delta"] == change.reindex(cust.index)).all()


def test_comparison_a_finds_exactly_the_planted_errors(
    result: ReconciliationResult, demo: tuple[Path, Path]
) -> None:
    _, errors = demo
    truth = pd.read_csv(errors, dtype=str)
    cohort = set(result.customers["customer_id"])
    planted = set(truth.loc[truth["customer_id"].isin(cohort), "invoice_id"])
    drift = result.exceptions["drift"]
    assert planted, "the cohort should hold some planted errors"
    assert set(drift["actual_invoice_id"]) == planted
    causes = drift.set_index("actual_invoice_id")["cause"]
    kinds = truth.set_index("invoice_id")["kind"]
    expected = {
        "double_charged_addon": "extra_line",
        "stale_price": "price_change",
        "rounding_slip": "rounding",
        "missing_usage_line": "missing_line",
    }
    for invoice_id in planted:
        assert causes[invoice_id] == expected[kinds[invoice_id]], invoice_id


def test_finding_ids_are_stable(result: ReconciliationResult, demo: tuple[Path, Path]) -> None:
    snapshot, _ = demo
    again = reconcile_files(
        snapshot,
        EXAMPLES / "rollout.yaml",
        2,
        EXAMPLES / "policy.yaml",
        options=Options(diff_customers=0),
    )
    assert (
        again.all_findings()["finding_id"].tolist() == result.all_findings()["finding_id"].tolist()
    )


def test_check_exit_codes(demo: tuple[Path, Path], tmp_path: Path) -> None:
    snapshot, _ = demo
    args = [
        "check",
        "--snapshot",
        str(snapshot),
        "--rollout",
        str(EXAMPLES / "rollout.yaml"),
        "--phase",
        "2",
    ]
    ok = CliRunner().invoke(
        main, [*args, "--policy", str(EXAMPLES / "policy.yaml"), "--junit", str(tmp_path / "j.xml")]
    )
    assert ok.exit_code == 0, ok.output
    assert ok.output == ""  # quiet on success
    assert (tmp_path / "j.xml").read_text().startswith("<?xml")

    strict = tmp_path / "strict.yaml"
    strict.write_text("phases:\n  2:\n    allowed_causes: [rounding, proration_method, tax]\n")
    failed = CliRunner().invoke(main, [*args, "--policy", str(strict)])
    assert failed.exit_code == 1
    assert "price_change" in failed.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("max_unexplained: lots\n")
    unusable = CliRunner().invoke(main, [*args, "--policy", str(bad)])
    assert unusable.exit_code == 2
    assert "bad.yaml:1" in unusable.output and "max_unexplained" in unusable.output


GOLDEN = Path(__file__).parent / "golden" / "demo_phase2_summary.json"


def test_summary_matches_the_golden_file(result: ReconciliationResult, golden: Golden) -> None:
    """The demo company's phase-2 summary, to the minor unit; regenerate on purpose only."""
    import json

    from shadowbill.reports.summary import build_summary

    summary = build_summary(result)
    fingerprints = summary.pop("fingerprints")
    assert set(fingerprints) == {"snapshot", "legacy_catalog", "new_catalog", "rollout", "policy"}
    assert all(len(v) == 64 for v in fingerprints.values())
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    golden(GOLDEN, text)


def test_pricing_without_text_leaves_only_descriptions_and_explanations_out(
    demo: tuple[Path, Path],
) -> None:
    """The comparisons price without text; every other column must be the same."""
    snapshot = read_snapshot(demo[0])
    catalog = load_rollout(EXAMPLES / "rollout.yaml").catalogs.legacy
    full = price(snapshot, catalog)
    lean = price(snapshot, catalog, text=False)
    assert full.lines["explain"].notna().all() and full.lines["description"].notna().any()
    assert lean.lines["explain"].isna().all() and lean.lines["description"].isna().all()
    pd.testing.assert_frame_equal(
        full.lines.drop(columns=["explain", "description"]),
        lean.lines.drop(columns=["explain", "description"]),
    )
    pd.testing.assert_frame_equal(full.invoices, lean.invoices)
