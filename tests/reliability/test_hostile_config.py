"""A corpus of hostile configuration files: each is one line naming the file, exit 2, in
bounded time and memory (the child runs under RLIMIT_AS), whatever slot it is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from migrate_cases import DemoEnv, demo_env
from reliability_run import MEMORY_LIMIT, child_env, limits

pytestmark = pytest.mark.slow
CORPUS = Path(__file__).parent / "hostile"
SECONDS = 30


@pytest.fixture(scope="module")
def env() -> DemoEnv:
    """The small demo company (its snapshot and rollout are the sane inputs)."""
    return demo_env(60)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The committed files plus the ones that cannot be committed (big, device, FIFO).

    (A folder given as a file is refused by the command line's own option check.)
    """
    extra = tmp_path_factory.mktemp("hostile")
    big = extra / "big.yaml"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse
    fifo = extra / "fifo.yaml"
    os.mkfifo(fifo)
    return [*sorted(CORPUS.glob("*.yaml")), big, fifo, Path("/dev/zero")]


def _commands(env: DemoEnv, hostile: Path, out: Path) -> dict[str, list[str]]:
    snap, rollout = str(env.snapshot), str(env.rollout)
    return {
        "catalog": ["price", "--snapshot", snap, "--catalog", str(hostile), "--out", str(out)],
        "rollout": [
            "reconcile",
            "--snapshot",
            snap,
            "--rollout",
            str(hostile),
            "--phase",
            "2",
            "--out",
            str(out),
        ],
        "policy": [
            "reconcile",
            "--snapshot",
            snap,
            "--rollout",
            rollout,
            "--phase",
            "2",
            "--policy",
            str(hostile),
            "--out",
            str(out),
        ],
        "spec": [
            "extract",
            "--source",
            f"sqlite:///{env.legacy_db}",
            "--spec",
            str(hostile),
            "--out",
            str(out),
        ],
    }


def test_every_hostile_file_in_every_slot_is_one_line_exit_2(
    env: DemoEnv, corpus: list[Path], tmp_path: Path
) -> None:
    trials = [
        (hostile, slot, args)
        for hostile in corpus
        for slot, args in _commands(env, hostile, tmp_path / "out").items()
    ]
    child = subprocess.run(  # one child for all trials: the limits hold for every one
        [sys.executable, str(Path(__file__).parent / "hostile_child.py")],
        input="".join(json.dumps(args) + "\n" for _, _, args in trials),
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        preexec_fn=limits(),
        timeout=len(trials) * SECONDS,
        check=False,
    )
    results = [json.loads(line) for line in child.stdout.splitlines()]
    assert len(results) == len(trials), child.stderr[-2000:]
    problems = []
    for (hostile, slot, _), result in zip(trials, results, strict=True):
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        if not (
            result["code"] == 2
            and len(lines) == 1
            and lines[0].startswith("shadowbill: error: ")
            and str(hostile) in lines[0]
            and result["seconds"] < SECONDS
        ):
            problems.append(
                f"{hostile.name} as {slot}: exit {result['code']} in {result['seconds']:.1f}s: "
                f"{result['stderr'][-300:]!r}"
            )
    assert not (tmp_path / "out").exists() and not (tmp_path / "pwned").exists()
    slowest = max(r["seconds"] for r in results)
    print(
        f"hostile configuration: {len(corpus)} files x {len(trials) // len(corpus)} slots = "
        f"{len(trials)} trials, {len(trials) - len(problems)} refused in one line with exit 2, "
        f"slowest {slowest:.2f}s, under RLIMIT_AS {MEMORY_LIMIT // 1024**3} GiB"
    )
    assert not problems, "\n".join(problems)
