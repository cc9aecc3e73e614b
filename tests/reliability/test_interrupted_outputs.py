"""Disk-full and Ctrl-C trials for ``reconcile`` and ``migrate plan``, and concurrent plans:
nothing half-written ever looks complete, nothing of an earlier run is lost."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from migrate_cases import USD, DemoEnv, demo_env
from reliability_run import run, start

pytestmark = pytest.mark.slow
DISK_LIMITS = (4_096, 65_536, 1_048_576)  # bytes a file may grow to (RLIMIT_FSIZE)
SIGINT_TRIALS = 4
REPORT_FILES = ("findings.csv", "summary.json")


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company."""
    return demo_env(60)


def _reconcile(env: DemoEnv, out: Path, phase: str = "2") -> list[str]:
    return [
        "reconcile",
        "--snapshot",
        str(env.snapshot),
        "--rollout",
        str(env.rollout),
        "--phase",
        phase,
        "--policy",
        str(env.policy),
        "--out",
        str(out),
    ]


def _digest(folder: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in REPORT_FILES
        if (folder / name).exists()
    }


def _staging_left(parent: Path) -> list[str]:
    return [p.name for p in parent.rglob("*") if ".partial-" in p.name]


@pytest.fixture(scope="module")
def reports(env: DemoEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Reference digests of a complete phase 2 and phase 3 report."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for phase in ("2", "3"):
        result = run(_reconcile(env, root / phase, phase), root)
        assert result.code in (0, 1), result.stderr
        out[phase] = _digest(root / phase)
    assert out["2"] != out["3"]
    return out


def test_reconcile_on_a_full_disk_leaves_the_earlier_report_or_nothing(
    env: DemoEnv, reports: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    trials = 0
    for limit in DISK_LIMITS:
        fresh = tmp_path / f"fresh-{limit}"
        result = run(_reconcile(env, fresh), tmp_path, file_size=limit)
        trials += 1
        if result.code == 2:
            assert len(result.error_lines) == 1 and "File too large" in result.stderr
            assert not fresh.exists()
        else:  # the limit was large enough for every file
            assert _digest(fresh) == reports["2"]
        earlier = tmp_path / f"earlier-{limit}"
        assert run(_reconcile(env, earlier, "3"), tmp_path).code in (0, 1)
        result = run(_reconcile(env, earlier), tmp_path, file_size=limit)
        trials += 1
        assert _digest(earlier) in (reports["3"], reports["2"])
        if result.code == 2:
            assert _digest(earlier) == reports["3"] and len(result.error_lines) == 1
        assert _staging_left(tmp_path) == []
    print(f"disk-full trials (reconcile): {trials}, limits {DISK_LIMITS}; nothing half-written")


def test_reconcile_interrupted_by_ctrl_c_never_mixes_two_runs(
    env: DemoEnv, reports: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    rng = random.Random(13)
    outcomes = {"interrupted": 0, "finished": 0}
    for trial in range(SIGINT_TRIALS):
        out = tmp_path / f"out-{trial}"
        assert run(_reconcile(env, out, "3"), tmp_path).code in (0, 1)
        proc = start(_reconcile(env, out), tmp_path)
        time.sleep(rng.uniform(1.0, 9.0))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 130:
            outcomes["interrupted"] += 1
            assert err.strip().splitlines()[-1] == "shadowbill: interrupted"
        elif proc.returncode == -signal.SIGINT:  # still importing: nothing ran yet
            outcomes["before start"] = outcomes.get("before start", 0) + 1
        else:
            outcomes["finished"] += 1
            assert proc.returncode in (0, 1), err
        assert _digest(out) in (reports["3"], reports["2"])  # one run's files, never both
        assert not (out / ".shadowbill-incomplete").exists()
        assert _staging_left(tmp_path) == []
    print(f"SIGINT trials (reconcile): {SIGINT_TRIALS}, {outcomes}")


def _plan(env: DemoEnv, ledger: Path, size: int = 3) -> list[str]:
    return [
        "migrate",
        "plan",
        "--rollout",
        str(env.rollout),
        "--phase",
        "2",
        "--snapshot",
        str(env.snapshot),
        "--where",
        USD,
        "--no-rank",
        "--batch-size",
        str(size),
        "--ledger",
        f"sqlite:///{ledger}",
    ]


def _ledger_batches(ledger: Path) -> dict[str, dict[str, str]]:
    if not ledger.exists():
        return {}
    with sqlite3.connect(ledger) as conn:
        rows = conn.execute("SELECT batch_id, status, inputs_json FROM batches").fetchall()
    return {b: {"status": s, **json.loads(fps)} for b, s, fps in rows}


def _check_batch_folders(cwd: Path, ledger: Path) -> tuple[int, int]:
    """Every batch folder is its own batch's; returns (complete folders, batches without)."""
    recorded = _ledger_batches(ledger)
    folders = cwd / ".shadowbill" / "batches"
    complete = 0
    for folder in folders.iterdir() if folders.exists() else []:
        plan = json.loads((folder / "plan.json").read_text())
        assert plan["batch_id"] == folder.name and folder.name in recorded
        assert all(folder.name in line for line in (folder / "operations.jsonl").open())
        complete += 1
    missing = [b for b in recorded if not (folders / b / "plan.json").exists()]
    assert _staging_left(cwd) == []
    return complete, len(missing)


def test_plan_on_a_full_disk_or_interrupted_leaves_no_files_or_a_detectable_batch(
    env: DemoEnv, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.db"
    assert run(["migrate", "status", "--ledger", f"sqlite:///{ledger}"], tmp_path).code == 0
    full = 0
    for limit in (2_048, 16_384):
        result = run(_plan(env, ledger), tmp_path, file_size=limit)
        full += 1
        assert result.code == 2 and len(result.error_lines) == 1, result.stderr
        _check_batch_folders(tmp_path, ledger)
    rng = random.Random(7)
    outcomes = {"interrupted": 0, "finished": 0}
    for _ in range(SIGINT_TRIALS):
        proc = start(_plan(env, ledger), tmp_path)
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        outcomes["interrupted" if proc.returncode in (130, -signal.SIGINT) else "finished"] += 1
        assert proc.returncode in (0, 130, 2, -signal.SIGINT)
        _check_batch_folders(tmp_path, ledger)
    complete, missing = _check_batch_folders(tmp_path, ledger)
    print(
        f"plan trials: {full} disk-full, {SIGINT_TRIALS} SIGINT {outcomes}; "
        f"{complete} complete batch folders, {missing} batch(es) caught as missing files"
    )


def test_concurrent_plans_never_share_a_folder(env: DemoEnv, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    rounds, planners = 3, 2
    planned, refused = 0, 0
    for _ in range(rounds):
        procs = [start(_plan(env, ledger, size=2), tmp_path) for _ in range(planners)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            if proc.returncode == 0:
                planned += 1
            else:  # both chose the same subscriptions: the ledger refuses the second
                assert proc.returncode == 2 and "already in a live batch" in err, err
                refused += 1
        complete, missing = _check_batch_folders(tmp_path, ledger)
        assert complete == planned and missing == 0
    assert planned >= rounds
    print(
        f"concurrent plans: {rounds} rounds x {planners} planners: {planned} batches, each in "
        f"its own folder; {refused} refused by the ledger (same subscriptions), no files left"
    )
