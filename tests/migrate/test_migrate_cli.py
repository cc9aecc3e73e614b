"""``shadowbill migrate``: the command group end to end, its output and its one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from migrate_cases import USD, DemoEnv, demo_env, subscription_counts

from shadowbill.cli.migrate import migrate
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow

KEY = "sk_test_cliTESTKEY0123456789"


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company."""
    return demo_env(60)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh local Stripe-compatible server."""
    with start_localstripe() as srv:
        yield srv


def _run(args: list[str], ledger: str) -> Result:
    return CliRunner().invoke(
        migrate, [*args, "--ledger", ledger], env={"STRIPE_API_KEY": KEY}, catch_exceptions=False
    )


def _one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shadowbill: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.output


def test_the_command_group_runs_a_batch_from_plan_to_cutover(
    env: DemoEnv, server: LocalServer, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    legacy = tmp_path / "legacy.db"
    legacy.write_bytes(env.legacy_db.read_bytes())
    folder = tmp_path / "batch"

    plan = _run(
        [
            "plan",
            *("--rollout", str(env.rollout), "--phase", "2", "--snapshot", str(env.snapshot)),
            *("--policy", str(env.policy), "--batch-size", "6", "--where", USD, "--no-rank"),
            *("--out", str(folder)),
        ],
        ledger,
    )
    assert plan.exit_code == 0, plan.output
    assert "batch p2-0001 (phase 2): 6 subscriptions of 6 customers" in plan.stdout
    assert "operations: " in plan.stdout and "6 subscription" in plan.stdout
    assert "first target periods start from 20" in plan.stdout
    assert (folder / "operations.jsonl").exists() and (folder / "stripe_migration.csv").exists()

    applied_early = _run(["apply", "--batch", "p2-0001", "--base-url", server.url], ledger)
    _one_line_error(applied_early, "has not passed its gate", "--force --reason")
    _one_line_error(
        _run(["apply", "--batch", "p2-0001", "--force"], ledger), "--force needs --reason"
    )

    gate = _run(["gate", "--batch", "p2-0001"], ledger)
    assert gate.exit_code == 0 and "gate of batch p2-0001: PASS" in gate.stdout

    review = tmp_path / "review"
    jsonl = _run(["apply", "--batch", "p2-0001", "--target", "jsonl", "--out", str(review)], ledger)
    assert jsonl.exit_code == 0, jsonl.output
    assert (review / "operations.jsonl").read_bytes() == (folder / "operations.jsonl").read_bytes()
    assert sum(subscription_counts(server.url).values()) == 0  # a review file sends nothing

    args = ["--base-url", server.url, "--rate-limit", "200"]
    apply = _run(["apply", "--batch", "p2-0001", *args], ledger)
    assert apply.exit_code == 0, apply.output
    assert "applying batch p2-0001: " in apply.stdout
    assert "batch p2-0001 is applied: 6 subscriptions applied, 0 failed" in apply.stdout

    verify = _run(["verify", "--batch", "p2-0001", *args], ledger)
    assert verify.exit_code == 0, verify.output
    assert "batch p2-0001 is verified: 6 verified, 0 not" in verify.stdout

    bad = _run(
        [
            "cutover",
            *("--batch", "p2-0001", "--source", f"sqlite:///{legacy}"),
            *("--stop-statement", "UPDATE plans_active SET plan_state = 'CNCL'"),
        ],
        ledger,
    )
    _one_line_error(bad, ":subscription_ids")
    cutover = _run(
        [
            "cutover",
            "--batch",
            "p2-0001",
            "--spec",
            str(env.spec),
            "--source",
            f"sqlite:///{legacy}",
        ],
        ledger,
    )
    assert cutover.exit_code == 0, cutover.output
    assert (
        "6 subscriptions cut over" in cutover.stdout and "legacy rows stopped: 6" in cutover.stdout
    )
    with sqlite3.connect(legacy) as db:
        ids = [line.split(",")[0] for line in (folder / "cutover.csv").read_text().splitlines()[1:]]
        marks = ",".join("?" * len(ids))
        states = db.execute(
            f"SELECT DISTINCT billing_enabled FROM plans_active WHERE plan_ref IN ({marks})", ids
        ).fetchall()
    assert len(ids) == 6 and states == [(0,)]

    _one_line_error(
        _run(["rollback", "--batch", "p2-0001", *args], ledger), "cut_over", "cannot be rolled back"
    )

    status = _run(["status"], ledger)
    assert status.exit_code == 0 and "p2-0001" in status.stdout and "cut_over" in status.stdout
    assert "nothing is stuck" in status.stdout
    as_json = json.loads(_run(["status", "--json"], ledger).stdout)
    assert as_json["batches"][0]["cut_over"] == 6 and as_json["stuck"] == []

    log = _run(["log", "--batch", "p2-0001", "--limit", "200"], ledger)
    assert log.exit_code == 0
    for action in ("plan", "gate", "apply", "verify", "cutover"):
        assert action in log.stdout
    lines = _run(["log", "--batch", "p2-0001", "--json", "--limit", "500"], ledger).stdout
    rows = [json.loads(line) for line in lines.splitlines()]
    assert {r["action"] for r in rows} >= {"plan", "gate", "apply", "verify", "cutover"}
    assert all(r["actor"] for r in rows)
    plan_row = next(r for r in rows if r["action"] == "plan" and r["fingerprints"].get("rollout"))
    assert {"snapshot", "rollout", "new_catalog", "operations"} <= set(plan_row["fingerprints"])


def test_errors_are_one_line_with_exit_status_2(env: DemoEnv, tmp_path: Path) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    _one_line_error(_run(["gate", "--batch", "nope"], ledger), "no batch nope")
    _one_line_error(_run(["log", "--batch", "nope"], ledger), "no batch nope")
    where = _run(
        [
            "plan",
            *("--rollout", str(env.rollout), "--phase", "2", "--snapshot", str(env.snapshot)),
            *("--where", "segment ==", "--no-rank", "--out", str(tmp_path / "b")),
        ],
        ledger,
    )
    _one_line_error(where, "--where 'segment =='", "columns subscription_id")
    phase = _run(
        [
            "plan",
            *("--rollout", str(env.rollout), "--phase", "9", "--snapshot", str(env.snapshot)),
            "--no-rank",
        ],
        ledger,
    )
    _one_line_error(phase, "no phase 9")
    _one_line_error(_run(["status"], "not a url"), "not a database URL")


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STRIPE_API_KEY"}
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "shadowbill.cli.migrate", "status", "--ledger", ledger],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "nothing is stuck" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "shadowbill.cli.migrate", "rollback", "--batch", "x"],
        capture_output=True,
        text=True,
        env={**env, "SHADOWBILL_LEDGER_URL": ledger},
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("shadowbill: error: no batch x")
