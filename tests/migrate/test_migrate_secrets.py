"""The Stripe API key never appears in anything a migration writes or prints.

plan, gate, apply, verify, status and log run with a random ``sk_test_...`` key against
the local server; apply runs as its own process with the Stripe SDK's debug logging on
(every request it sends is logged), the other steps in process with every logger at
DEBUG. Then every byte written (the ledger database and its WAL, the batch folder, every
file under the test's folder) and everything printed or logged is searched for the key
and for its random part alone.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from migrate_cases import USD, DemoEnv, demo_env, subscription_counts

from shadowbill.cli.migrate import migrate
from shadowbill.rehearsal.local_server import LocalServer, start_localstripe

# Generates a demo company, starts servers or processes: not in the fast lane.
pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A fresh local Stripe-compatible server."""
    with start_localstripe() as srv:
        yield srv


def _leaks(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` whose bytes contain any needle."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n.decode()}" for n in needles if n in data]
    return found


def test_the_api_key_is_never_written_printed_or_logged(
    server: LocalServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env: DemoEnv = demo_env(60)
    secret = secrets.token_hex(12)
    key = f"sk_test_{secret}"
    needles = [key.encode(), secret.encode()]
    work = tmp_path / "work"
    work.mkdir()
    ledger = f"sqlite:///{work / 'ledger.db'}"
    batches = work / "batches"
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str) -> None:
        result = runner.invoke(
            migrate,
            [*args, "--ledger", ledger],
            env={"STRIPE_API_KEY": key, "STRIPE_LOG": "debug"},
            catch_exceptions=False,
        )
        outputs.extend([result.stdout, result.stderr])
        assert result.exit_code == 0, result.output

    run(
        "plan",
        *("--rollout", str(env.rollout), "--phase", "2", "--snapshot", str(env.snapshot)),
        *("--policy", str(env.policy), "--batch-size", "5", "--where", USD),
        *("--no-rank", "--out", str(batches / "p2-0001")),
    )
    run("gate", "--batch", "p2-0001")
    applied = subprocess.run(
        [
            *(sys.executable, "-m", "shadowbill.cli.migrate", "apply", "--batch", "p2-0001"),
            *("--ledger", ledger, "--base-url", server.url, "--rate-limit", "200"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "STRIPE_API_KEY": key, "STRIPE_LOG": "debug"},
        timeout=120,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert "Request to Stripe api" in applied.stderr  # the SDK did log every request
    outputs.extend([applied.stdout, applied.stderr])
    run("verify", "--batch", "p2-0001", "--base-url", server.url)
    run("status")
    run("log", "--limit", "1000")
    run("log", "--json", "--limit", "1000")
    assert sum(subscription_counts(server.url).values()) == 5
    outputs.append(caplog.text)
    assert "Request to Stripe api" in caplog.text

    # the search finds a key where there is one
    control = tmp_path / "control"
    control.mkdir()
    (control / "leak.txt").write_bytes(b"x" + key.encode() + b"x")
    assert _leaks(control, needles)

    written = sorted(p.name for p in work.rglob("*") if p.is_file())
    assert "ledger.db" in written and "operations.jsonl" in written
    assert "verify_findings.csv" in written
    assert _leaks(work, needles) == []
    printed = "\n".join(outputs)
    assert len(printed) > 1000
    assert key not in printed and secret not in printed
