"""Ledger fixtures: a fresh ledger on a SQLite file and in its own PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from ledger_cases import FINGERPRINTS, plan_frame

from shadowbill.ledger import Ledger, open_ledger


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL of the PostgreSQL test database whose search_path is a new, empty schema."""
    schema = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.server)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger location: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger' / 'ledger.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """A new ledger (SQLite and PostgreSQL), signed by the actor "tester"."""
    with open_ledger(ledger_url, actor="tester") as opened:
        yield opened


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A new ledger in a SQLite file (for tests about SQLite itself)."""
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="tester") as opened:
        yield opened


@pytest.fixture
def make_batch(ledger: Ledger) -> Callable[..., str]:
    """Plan a batch of the given subscription ids on the fixture ledger."""

    def make(ids: list[str], phase: int = 1, **kwargs: object) -> str:
        return ledger.create_batch(phase, plan_frame(ids), FINGERPRINTS, **kwargs)  # type: ignore[arg-type]

    return make
