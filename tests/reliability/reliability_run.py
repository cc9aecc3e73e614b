"""Run the shadowbill command line in a child process with limits (memory, file size)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MEMORY_LIMIT = 3 * 1024**3  # address space of a child: a hostile file must not go past it
ENTRY = "from shadowbill.cli.app import main; main()"


@dataclass(frozen=True)
class Run:
    """A finished child: exit status, output and wall time."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        """The non-empty lines on stderr."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: one BLAS thread, an API key, no colour."""
    env = dict(os.environ)
    env.update(
        {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "TERM": "dumb"}
    )
    env.setdefault("STRIPE_API_KEY", "sk_test_reliabilityKEY0123456")
    env.update(extra)
    return env


def limits(memory: int = MEMORY_LIMIT, file_size: int | None = None) -> Callable[[], None]:
    """A preexec function setting RLIMIT_AS (and RLIMIT_FSIZE: a full disk) in the child."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return apply


def start(
    args: Sequence[str], cwd: Path, *, file_size: int | None = None, **env: str
) -> subprocess.Popen[str]:
    """Start ``shadowbill ARGS`` in a child process."""
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        cwd=cwd,
        env=child_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limits(file_size=file_size),
    )


def run(
    args: Sequence[str], cwd: Path, *, timeout: float = 120, file_size: int | None = None
) -> Run:
    """Run ``shadowbill ARGS`` to the end (killed after ``timeout`` seconds)."""
    began = time.monotonic()
    proc = start(args, cwd, file_size=file_size)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return Run(-9, out, err + "\n(timed out)", time.monotonic() - began)
    return Run(proc.returncode, out, err, time.monotonic() - began)
