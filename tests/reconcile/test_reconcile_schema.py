"""The reconciler's output frames meet their declared contracts (shadowbill.reconcile.schema)."""

from __future__ import annotations

import pandas as pd
import pandera.errors
import pytest
from demo_companies import demo_company
from pandera.engines.pandas_engine import Engine

from shadowbill.demo.run import examples_dir
from shadowbill.reconcile.findings import FINDING_COLUMNS
from shadowbill.reconcile.result import CUSTOMER_COLUMNS, WATERFALL_COLUMNS, ReconciliationResult
from shadowbill.reconcile.run import Options, reconcile_files
from shadowbill.reconcile.schema import CustomerView, Findings, Waterfall

pytestmark = pytest.mark.slow  # reconciles a demo company

EXAMPLES = examples_dir()


@pytest.fixture(scope="module")
def result() -> ReconciliationResult:
    company = demo_company(300, 8, 11)
    return reconcile_files(
        company.snapshot, EXAMPLES / "rollout.yaml", 2, EXAMPLES / "policy.yaml", options=Options()
    )


@pytest.mark.parametrize(
    ("model", "columns"),
    [(Findings, FINDING_COLUMNS), (CustomerView, CUSTOMER_COLUMNS), (Waterfall, WATERFALL_COLUMNS)],
)
def test_each_contract_declares_the_pinned_columns(model, columns: dict[str, str]) -> None:
    declared = model.to_schema().columns
    assert list(declared) == list(columns)
    for name, dtype in columns.items():
        assert declared[name].dtype.check(Engine.dtype(pd.api.types.pandas_dtype(dtype))), name


def test_the_reconciler_meets_its_contracts_at_its_exit(result: ReconciliationResult) -> None:
    findings = result.all_findings()
    assert len(findings) > 100 and len(result.customers) and len(result.waterfall)
    Findings.validate(findings, lazy=True)
    Findings.validate(result.findings, lazy=True)
    CustomerView.validate(result.customers, lazy=True)
    Waterfall.validate(result.waterfall, lazy=True)


def test_a_waterfall_that_does_not_add_up_breaks_its_contract(
    result: ReconciliationResult,
) -> None:
    broken = result.waterfall.copy()
    last = broken.index[broken["cause"] == "new_total"][0]
    broken.loc[last, "amount"] += 1
    with pytest.raises(pandera.errors.SchemaError, match="steps_add_up"):
        Waterfall.validate(broken)
