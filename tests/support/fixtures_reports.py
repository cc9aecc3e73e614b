"""Fixtures of the report tests: synthetic reconciliation results (see report_fixture.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from demo_companies import DemoCompany
from fixtures_demo import SMALL
from report_fixture import build_result

from shadowbill.reconcile.result import ReconciliationResult


@pytest.fixture(scope="session")
def result() -> ReconciliationResult:
    """A failing phase-2 result of 300 customers."""
    return build_result()


@pytest.fixture(scope="session")
def passing_result() -> ReconciliationResult:
    """A passing phase-2 result: no unexplained change, nothing unmapped."""
    return build_result(n_customers=120, passing=True, seed=11)


@pytest.fixture(scope="session")
def finance_result(demo_companies: Callable[..., DemoCompany]) -> ReconciliationResult:
    """Phase 2 of the 400-customer demo company, reconciled (for the finance figures)."""
    from shadowbill.demo.run import examples_dir
    from shadowbill.reconcile.run import Options, reconcile_files

    examples = examples_dir()
    return reconcile_files(
        demo_companies(**SMALL).snapshot,
        examples / "rollout.yaml",
        2,
        examples / "policy.yaml",
        options=Options(detail_customers=40, diff_customers=0),
    )
