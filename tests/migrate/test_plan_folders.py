"""``migrate plan`` writes its batch folder whole, named by the batch id the ledger gave,
never into another batch's folder; a failed plan leaves no files; an interrupted one is
detected before its gate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from migrate_cases import USD, DemoEnv, demo_env

from shadowbill.ledger import Ledger, LedgerError, open_ledger
from shadowbill.migrate import OPERATIONS_FILE, PLAN_FILE, MigrationError, gate_batch, plan_batch
from shadowbill.output_folder import StagedFolder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company."""
    return demo_env(60)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A fresh SQLite ledger."""
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def _plan(ledger: Ledger, env: DemoEnv, tmp_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    return plan_batch(
        ledger,
        rollout_path=env.rollout,
        phase=2,
        snapshot_dir=env.snapshot,
        policy_path=env.policy,
        batch_size=4,
        where=USD,
        batches_dir=tmp_path / "batches",
        rank_by_risk=False,
        **kw,  # type: ignore[arg-type]
    )


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_plan_that_fails_at_the_ledger_leaves_no_files(
    env: DemoEnv, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise LedgerError("the ledger refused")

    monkeypatch.setattr(ledger, "create_batch", refuse)
    with pytest.raises(LedgerError):
        _plan(ledger, env, tmp_path)
    assert _entries(tmp_path / "batches") == []  # no batch folder, no staging folder


def test_a_planner_that_lost_the_id_race_writes_into_its_own_folder(
    env: DemoEnv, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _plan(ledger, env, tmp_path)
    assert first.batch_id == "p2-0001"
    first_folder = tmp_path / "batches" / "p2-0001"
    reviewed = {p.name: p.read_bytes() for p in first_folder.iterdir()}
    stale = iter(["p2-0001"])  # the second planner read the next id before the first recorded
    real = ledger.next_batch_id
    monkeypatch.setattr(ledger, "next_batch_id", lambda phase: next(stale, None) or real(phase))
    second = _plan(ledger, env, tmp_path)
    assert second.batch_id == "p2-0002"
    for result in (first, second):
        folder = tmp_path / "batches" / result.batch_id
        assert result.out_dir == folder.resolve()
        assert json.loads((folder / PLAN_FILE).read_text())["batch_id"] == result.batch_id
        ops = (folder / OPERATIONS_FILE).read_text()
        other = "p2-0002" if result.batch_id == "p2-0001" else "p2-0001"
        assert result.batch_id in ops and other not in ops
    assert _entries(tmp_path / "batches") == ["p2-0001", "p2-0002"]
    assert {p.name: p.read_bytes() for p in first_folder.iterdir()} == reviewed


def test_an_out_folder_holding_a_live_batch_is_refused(
    env: DemoEnv, ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "review"
    first = _plan(ledger, env, tmp_path, out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(MigrationError, match=f"holds the plan of batch {first.batch_id}"):
        _plan(ledger, env, tmp_path, out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_plan_killed_after_its_ledger_write_is_caught_at_the_gate(
    env: DemoEnv, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(self: StagedFolder) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(StagedFolder, "publish", killed)
    with pytest.raises(KeyboardInterrupt):
        _plan(ledger, env, tmp_path)
    monkeypatch.undo()
    batch = ledger.batches()["batch_id"].tolist()
    assert batch == ["p2-0001"] and _entries(tmp_path / "batches") == []
    with pytest.raises(MigrationError, match=f"no {PLAN_FILE} in .*roll it back"):
        gate_batch(ledger, "p2-0001")
