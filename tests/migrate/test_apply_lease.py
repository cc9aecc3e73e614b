"""A running apply holds its batch: rollback (even forced) and a second apply wait for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from migrate_cases import USD, DemoEnv, demo_env

from shadowbill.ledger import LeaseHeldError, Ledger, open_ledger
from shadowbill.migrate import MigrationError, apply_batch, plan_batch, rollback_batch

pytestmark = pytest.mark.slow
HOLDER = "alice@build-7 pid 4242"


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company."""
    return demo_env(60)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """A fresh SQLite ledger; an API key in the environment."""
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_leaseTESTKEY0123456")
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def _planned(ledger: Ledger, env: DemoEnv, tmp_path: Path) -> str:
    return plan_batch(
        ledger,
        rollout_path=env.rollout,
        phase=2,
        snapshot_dir=env.snapshot,
        batch_size=4,
        where=USD,
        batches_dir=tmp_path / "batches",
        rank_by_risk=False,
    ).batch_id


def test_forced_rollback_refuses_while_an_apply_holds_the_lease(
    env: DemoEnv, ledger: Ledger, tmp_path: Path
) -> None:
    batch = _planned(ledger, env, tmp_path)
    ledger.acquire_lease(batch, HOLDER)
    with pytest.raises(MigrationError, match=f"being applied right now by {HOLDER}"):
        rollback_batch(ledger, batch, base_url="http://127.0.0.1:9", force_reason="stuck?")
    assert ledger.batch(batch).status == "planned"
    ledger.release_lease(batch, HOLDER)
    assert rollback_batch(ledger, batch, base_url="http://127.0.0.1:9").rolled_back


def test_a_second_apply_refuses_while_the_first_holds_the_lease(
    env: DemoEnv, ledger: Ledger, tmp_path: Path
) -> None:
    batch = _planned(ledger, env, tmp_path)
    ledger.acquire_lease(batch, HOLDER)
    with pytest.raises(LeaseHeldError, match=HOLDER):
        apply_batch(ledger, batch, base_url="http://127.0.0.1:9", force_reason="test")
    assert ledger.objects(batch).empty and ledger.lease(batch) is not None
