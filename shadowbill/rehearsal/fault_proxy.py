"""A fault-injecting reverse proxy for rehearsing a migration against an unreliable API.

Run as its own process, on 127.0.0.1 only::

    python -m shadowbill.rehearsal.fault_proxy --upstream http://127.0.0.1:8420 --port 0 \\
        --seed 7 --rates 429=0.04,500=0.03,503=0.03,delay=0.02,drop_before=0.04,drop_after=0.04

It forwards every request to ``--upstream`` and, with seeded randomness, instead injects
one fault per request (the rates are per-request probabilities, their sum at most 1):

- ``429``: rate limited, with ``Stripe-Should-Retry: true`` on half of them;
- ``500`` / ``503``: server errors, not forwarded;
- ``delay``: wait ``--delay`` seconds (longer than the client's timeout), then forward;
- ``drop_before``: close the connection without forwarding or answering;
- ``drop_after``: forward, let the upstream act (create the object), then close the
  connection without answering: the dangerous case, where only the Idempotency-Key makes
  the client's retry return the object already created instead of a second one;
- ``500_after``: forward, then answer 500 instead of the upstream's response.

``GET /__faults`` reports the counts (requests, forwarded, and each injected fault);
``POST /__faults/reset`` zeroes them. Only paths under ``/v1/`` get faults.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import sys
import threading
from collections import Counter
from typing import Any, Final

import aiohttp
from aiohttp import web

FAULTS: Final = ("429", "500", "503", "delay", "drop_before", "drop_after", "500_after")
_HOP: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)


def parse_rates(text: str) -> dict[str, float]:
    """``"429=0.05,drop_after=0.02"`` -> {"429": 0.05, "drop_after": 0.02} (validated)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
        rates[name] = float(value)
        if not 0 <= rates[name] <= 1:
            raise ValueError(f"fault rate {name}={value} is not a probability")
    if sum(rates.values()) > 1 + 1e-9:
        raise ValueError("fault rates add up to more than 1")
    return rates


class FaultProxy:
    """The proxy's state: upstream, seeded generator, rates and counters."""

    def __init__(self, upstream: str, rates: dict[str, float], seed: int, delay: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.rates = rates
        self.rng = random.Random(seed)
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self.session: aiohttp.ClientSession | None = None

    def pick(self) -> str | None:
        """The fault for the next request (None: forward it unharmed)."""
        x = self.rng.random()
        for name in FAULTS:
            rate = self.rates.get(name, 0.0)
            if x < rate:
                return name
            x -= rate
        return None

    async def forward(self, request: web.Request) -> tuple[int, bytes, dict[str, str]]:
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        ) as resp:
            data = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            self.counts["forwarded"] += 1
            return resp.status, data, out

    @staticmethod
    def drop(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()  # reset the connection: the client gets no response at all
        raise asyncio.CancelledError  # nothing to send; aiohttp discards the handler

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/__faults":
            if request.method == "POST":
                self.counts.clear()
            return web.json_response(
                {
                    "requests": self.counts["requests"],
                    "forwarded": self.counts["forwarded"],
                    "injected": {f: self.counts[f] for f in FAULTS},
                    "rates": self.rates,
                }
            )
        if request.path == "/__faults/reset" and request.method == "POST":
            self.counts.clear()
            return web.json_response({"reset": True})
        self.counts["requests"] += 1
        fault = self.pick() if request.path.startswith("/v1/") else None
        if fault is not None:
            self.counts[fault] += 1
        if fault == "429":
            resp = web.json_response(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "rate_limit",
                        "message": "Too many requests hit the API too quickly (injected).",
                    }
                },
                status=429,
            )
            if self.rng.random() < 0.5:
                resp.headers["Stripe-Should-Retry"] = "true"
            return resp
        if fault in ("500", "503"):
            return web.json_response(
                {"error": {"type": "api_error", "message": f"Injected {fault}."}}, status=int(fault)
            )
        if fault == "drop_before":
            await request.read()
            return self.drop(request)
        if fault == "delay":
            await asyncio.sleep(self.delay)
        status, body, headers = await self.forward(request)
        if fault == "drop_after":
            return self.drop(request)
        if fault == "500_after":
            return web.json_response(
                {"error": {"type": "api_error", "message": "Injected 500 after forwarding."}},
                status=500,
            )
        return web.Response(status=status, body=body, headers=headers)


def build_app(upstream: str, rates: dict[str, float], seed: int, delay: float) -> web.Application:
    """The proxy as an aiohttp application."""
    proxy = FaultProxy(upstream, rates, seed, delay)

    async def on_startup(app: web.Application) -> None:
        proxy.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120), auto_decompress=False
        )

    async def on_cleanup(app: web.Application) -> None:
        if proxy.session is not None:
            await proxy.session.close()

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app["proxy"] = proxy
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app


def _watch_stdin() -> None:
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Serve the proxy on 127.0.0.1 until stopped."""
    parser = argparse.ArgumentParser(description="Fault-injecting reverse proxy (loopback only).")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8420")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rates", default="", help="e.g. 429=0.05,500=0.02,drop_after=0.03")
    parser.add_argument("--delay", type=float, default=3.0, help="seconds for 'delay' faults")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    try:
        rates = parse_rates(args.rates)
    except ValueError as exc:
        parser.error(str(exc))
    app = build_app(args.upstream, rates, args.seed, args.delay)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))  # loopback only
    sock.listen(128)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    # All state is in memory and disposable: stop at once on SIGTERM/SIGINT.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    kwargs: dict[str, Any] = {
        "sock": sock,
        "print": None,
        "access_log": None,
        "shutdown_timeout": 0.5,
        "handle_signals": False,
    }
    web.run_app(app, **kwargs)


if __name__ == "__main__":
    main()
