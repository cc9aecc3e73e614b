"""Fixtures: the demo-company factory (demo_companies.py) and the 400-customer company."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pandas as pd
import pytest
from demo_companies import DemoCompany, demo_company

from shadowbill.demo.generate import DemoResult

SMALL = {"customers": 400, "months": 12, "seed": 7}


@pytest.fixture(scope="session")
def demo_companies() -> Callable[..., DemoCompany]:
    """The demo-company factory: ``demo_companies(customers, months, seed[, start])``."""
    return demo_company


@pytest.fixture(scope="session")
def demo() -> DemoResult:
    """A 400-customer demo company (the legacy database, its spec and planted errors)."""
    return demo_company(**SMALL).made


@pytest.fixture
def legacy_db(demo: DemoResult) -> Iterator[sqlite3.Connection]:
    """A read connection to the demo legacy database."""
    conn = sqlite3.connect(demo.db_path)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def planted(demo: DemoResult) -> pd.DataFrame:
    """The planted errors' ground truth (ids as text, amounts as integers)."""
    return pd.read_csv(demo.errors_path, dtype={"line_id": "string"}, keep_default_na=False)
