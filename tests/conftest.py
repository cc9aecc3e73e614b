"""Shared fixtures: database URLs for server tests, which skip on a laptop but never in CI."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

# Fixtures shared by every test folder (tests/support is on pytest's pythonpath).
pytest_plugins = [
    "fixtures_demo",
    "fixtures_extract",
    "fixtures_golden",
    "fixtures_ledger",
    "fixtures_reports",
    "fixtures_rollout",
    "fixtures_stripe",
]

IN_CI = os.environ.get("CI", "").lower() == "true"

DEFAULT_URLS = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/shadowbill_test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/shadowbill_test",
}


def server_url(kind: str) -> str:
    """The URL of a test database server, or skip (fail in CI) when it is unreachable."""
    url = os.environ.get(f"SHADOWBILL_TEST_{kind.upper()}_URL", DEFAULT_URLS[kind])
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any driver or connection failure
        if IN_CI:
            pytest.fail(f"{kind} test server unreachable in CI at {url}: {exc}")
        pytest.skip(f"{kind} server not reachable at {url}")
    return url


@pytest.fixture
def postgres_url() -> str:
    """A reachable PostgreSQL test database URL."""
    return server_url("postgres")


@pytest.fixture
def mariadb_url() -> str:
    """A reachable MariaDB test database URL."""
    return server_url("mariadb")
