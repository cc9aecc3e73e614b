"""A check scoped to a rollout change gives exactly the full check's findings and verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from demo_companies import demo_company

from shadowbill.reconcile.baseline import write_results
from shadowbill.reconcile.check import BaseConfig, CheckOutcome, run_check
from shadowbill.reports.summary import summary_json

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "demo_company"
pytestmark = pytest.mark.slow
SALES_PRO = '- {from: "pro_month_*", price: advanced_month, quantity: seats}'


@pytest.fixture(scope="module")
def estate() -> Path:
    """A 300-customer demo company's snapshot."""
    return demo_company(300, 12, 11).snapshot


def _config(folder: Path, old: str = "", new: str = "") -> Path:
    """A copy of the demo configuration, with one edit of the rollout."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in EXAMPLES.glob("*.yaml"):
        shutil.copy(f, folder / f.name)
    if old:
        text = (folder / "rollout.yaml").read_text()
        assert old in text
        (folder / "rollout.yaml").write_text(text.replace(old, new, 1))  # the first rule only
    return folder


def _save(outcome: CheckOutcome, out: Path) -> Path:
    write_results(outcome.result, out, projection_months=12)
    (out / "summary.json").write_text(summary_json(outcome.result))
    return out


@pytest.fixture(scope="module")
def baseline(estate: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main branch's results folder: a full check of the unchanged configuration."""
    config = _config(tmp_path_factory.mktemp("main"))
    outcome = run_check(estate, config / "rollout.yaml", 2, config / "policy.yaml")
    return _save(outcome, tmp_path_factory.mktemp("baseline"))


def _pair(estate: Path, baseline: Path, head: Path, tmp: Path) -> tuple[CheckOutcome, CheckOutcome]:
    base = BaseConfig.from_dir(EXAMPLES, head / "rollout.yaml", head / "policy.yaml", {})
    args = (estate, head / "rollout.yaml", 2, head / "policy.yaml")
    scoped = run_check(*args, baseline_dir=baseline, base=base)
    full = run_check(*args, baseline_dir=baseline)
    _save(scoped, tmp / "scoped")
    _save(full, tmp / "full")
    return scoped, full


def test_one_rule_quantity_change_scoped_equals_full(
    estate: Path, baseline: Path, tmp_path: Path
) -> None:
    head = _config(tmp_path / "head", SALES_PRO, SALES_PRO.replace("seats}", '"seats + 1"}'))
    scoped, full = _pair(estate, baseline, head, tmp_path)
    assert scoped.scope is not None and 0 < len(scoped.scope.customers) < 300
    assert full.scope is None
    # byte-identical findings, and the very rows of the affected customers
    assert (tmp_path / "scoped" / "findings.parquet").read_bytes() == (
        tmp_path / "full" / "findings.parquet"
    ).read_bytes()
    a = pd.read_parquet(tmp_path / "scoped" / "findings.parquet")
    b = pd.read_parquet(tmp_path / "full" / "findings.parquet")
    mine = list(scoped.scope.customers)
    pd.testing.assert_frame_equal(
        a[a["customer_id"].isin(mine)].reset_index(drop=True),
        b[b["customer_id"].isin(mine)].reset_index(drop=True),
    )
    assert scoped.result.verdict == full.result.verdict
    assert (tmp_path / "scoped" / "summary.json").read_text() == (
        tmp_path / "full" / "summary.json"
    ).read_text()
    # the same findings are new, and only for the affected customers
    assert scoped.diff is not None and full.diff is not None
    assert set(scoped.diff.ids("new")) == set(full.diff.ids("new")) != set()
    assert scoped.diff.counts() == full.diff.counts() and scoped.diff.net == full.diff.net
    assert set(full.diff.changes["customer_id"]) <= set(mine)


def test_a_policy_change_falls_back_to_a_full_run(
    estate: Path, baseline: Path, tmp_path: Path
) -> None:
    head = _config(tmp_path / "head")
    policy = (head / "policy.yaml").read_text().replace("max_share: 5 ", "max_share: 1 ")
    (head / "policy.yaml").write_text(policy)
    base = BaseConfig.from_dir(EXAMPLES, head / "rollout.yaml", head / "policy.yaml", {})
    said: list[str] = []
    outcome = run_check(
        estate, head / "rollout.yaml", 2, head / "policy.yaml",
        baseline_dir=baseline, base=base, log=said.append,
    )  # fmt: skip
    assert outcome.scope is None
    assert "policy changed" in outcome.full_reason and any("policy" in s for s in said)


def test_another_snapshot_falls_back_to_a_full_run(
    estate: Path, baseline: Path, tmp_path: Path
) -> None:
    other = tmp_path / "baseline"
    shutil.copytree(baseline, other)
    summary = json.loads((other / "summary.json").read_text())
    summary["fingerprints"]["snapshot"] = "0" * 64
    (other / "summary.json").write_text(json.dumps(summary))
    head = _config(tmp_path / "head", SALES_PRO, SALES_PRO.replace("seats}", '"seats + 1"}'))
    base = BaseConfig.from_dir(EXAMPLES, head / "rollout.yaml", head / "policy.yaml", {})
    outcome = run_check(
        estate, head / "rollout.yaml", 2, head / "policy.yaml", baseline_dir=other, base=base
    )
    assert outcome.scope is None and "snapshot differs" in outcome.full_reason


def test_an_unchanged_configuration_reconciles_nobody_and_changes_nothing(
    estate: Path, baseline: Path, tmp_path: Path
) -> None:
    head = _config(tmp_path / "head")
    scoped, _ = _pair(estate, baseline, head, tmp_path)
    assert scoped.scope is not None and scoped.scope.customers == ()
    assert scoped.diff is not None
    assert scoped.diff.changes.empty and scoped.diff.unchanged > 0
    assert (tmp_path / "scoped" / "summary.json").read_text() == (
        tmp_path / "full" / "summary.json"
    ).read_text()


def test_a_baseline_of_another_version_is_compared_but_not_scoped(
    estate: Path, baseline: Path, tmp_path: Path
) -> None:
    old = tmp_path / "baseline"
    shutil.copytree(baseline, old)
    findings = pd.read_parquet(old / "findings.parquet")
    findings.drop(columns=["price_id"]).to_parquet(old / "findings.parquet", index=False)
    head = _config(tmp_path / "head", SALES_PRO, SALES_PRO.replace("seats}", '"seats + 1"}'))
    base = BaseConfig.from_dir(EXAMPLES, head / "rollout.yaml", head / "policy.yaml", {})
    outcome = run_check(
        estate, head / "rollout.yaml", 2, head / "policy.yaml", baseline_dir=old, base=base
    )
    assert outcome.scope is None and "another version" in outcome.full_reason
    assert outcome.diff is not None and outcome.diff.counts()["new"] > 0
