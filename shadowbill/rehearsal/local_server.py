"""Start and stop the local Stripe-compatible server and the fault proxy as child processes.

Used by the tests and by ``shadowbill demo``: each server runs as its own Python process
(localstripe is GPL-3.0 and is never imported into shadowbill itself), listens on a free
127.0.0.1 port it picks, prints ``READY <url>`` and is then polled until it answers. A
child exits by itself when its parent does (it watches its stdin), so no server outlives
the program that started it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Final

from shadowbill.errors import LocalServerError

READY_TIMEOUT: Final = 20.0


@dataclass
class LocalServer:
    """A running child server: its URL and process; ``stop()`` (or ``with``) ends it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    _stderr: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.process.poll() is None

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (for error messages)."""
        return "".join(self._stderr[-20:])

    def get_json(self, path: str, timeout: float = 5.0) -> Any:
        """GET ``path`` from the server (no credentials) and decode its JSON."""
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return json.loads(resp.read().decode())

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _drain(stream: IO[bytes], sink: list[str]) -> None:
    for line in iter(stream.readline, b""):
        sink.append(line.decode(errors="replace"))
        del sink[:-200]


def start_module(
    name: str,
    module: str,
    args: Sequence[str] = (),
    *,
    health_path: str,
    timeout: float = READY_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> LocalServer:
    """Run ``python -m module --port 0 ... --exit-on-stdin-eof`` and wait until it is ready."""
    cmd = [sys.executable, "-m", module, "--port", "0", "--exit-on-stdin-eof", *args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr: list[str] = []
    threading.Thread(target=_drain, args=(proc.stderr, stderr), daemon=True).start()
    first: list[bytes] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    line = first[0].decode().strip() if first else ""
    if not line.startswith("READY "):
        server = LocalServer(name, "", proc, stderr)
        server.stop()
        raise LocalServerError(
            f"the {name} server did not start within {timeout:.0f}s: "
            f"{server.stderr_tail().strip().splitlines()[-1:] or ['no output']}"
        )
    server = LocalServer(name, line.split(" ", 1)[1], proc, stderr)
    threading.Thread(target=_drain, args=(proc.stdout, []), daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.get_json(health_path, timeout=2.0)
            return server
        except (urllib.error.URLError, OSError, ValueError):
            if not server.running or time.monotonic() > deadline:
                server.stop()
                raise LocalServerError(
                    f"the {name} server at {server.url} did not answer {health_path}: "
                    f"{server.stderr_tail().strip()[-300:] or 'no output'}"
                ) from None
            time.sleep(0.05)


def start_localstripe(timeout: float = READY_TIMEOUT) -> LocalServer:
    """localstripe with shadowbill's adapter on a free 127.0.0.1 port (a separate process)."""
    return start_module(
        "localstripe",
        "shadowbill.rehearsal.localstripe_server",
        health_path="/__health",
        timeout=timeout,
    )


def start_fault_proxy(
    upstream: str,
    *,
    seed: int = 0,
    rates: Mapping[str, float] | None = None,
    delay: float | None = None,
    timeout: float = READY_TIMEOUT,
) -> LocalServer:
    """The fault-injecting proxy in front of ``upstream`` on a free 127.0.0.1 port."""
    args = ["--upstream", upstream, "--seed", str(seed)]
    if rates:
        args += ["--rates", ",".join(f"{k}={v}" for k, v in rates.items())]
    if delay is not None:
        args += ["--delay", str(delay)]
    return start_module(
        "fault proxy",
        "shadowbill.rehearsal.fault_proxy",
        args,
        health_path="/__faults",
        timeout=timeout,
    )
