"""Fixtures of the report tests: synthetic reconciliation results (see report_fixture.py)."""

from __future__ import annotations

import pytest
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
