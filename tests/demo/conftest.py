"""Fixtures: one small demo company generated once per test session."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pandas as pd
import pytest

from shadowbill.demo.generate import DemoResult, generate

SMALL = {"customers": 400, "months": 12, "seed": 7}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    """A 400-customer demo company (the legacy database, its spec and planted errors)."""
    return generate(tmp_path_factory.mktemp("demo") / "legacy.db", **SMALL)


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
