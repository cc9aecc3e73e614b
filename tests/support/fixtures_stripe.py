"""Real parts for the target tests: localstripe + adapter, a fault proxy, a recording client.

localstripe is a test dependency (always installed), so these tests never skip: one
localstripe process (with shadowbill's adapter) serves the whole session on a free
127.0.0.1 port; tests keep apart by giving every object a unique id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stripe_cases import TEST_KEY, RecordingHTTPClient, anchor_in, catalog_ops, customer_ops

from shadowbill.rehearsal.local_server import LocalServer, start_fault_proxy, start_localstripe
from shadowbill.targets.model import Operation
from shadowbill.targets.stripe_api import StripeTarget


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalServer]:
    """localstripe with the adapter, running for the whole session."""
    server = start_localstripe()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_proxy(localstripe: LocalServer) -> Iterator[Callable[..., LocalServer]]:
    """A factory of fault proxies in front of localstripe; all stopped after the test."""
    started: list[LocalServer] = []

    def make(**kwargs: Any) -> LocalServer:
        proxy = start_fault_proxy(localstripe.url, **kwargs)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def uid() -> str:
    """A short unique id that keeps one test's objects apart from the others'."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def recorder() -> RecordingHTTPClient:
    """A fresh recording HTTP client."""
    return RecordingHTTPClient()


@pytest.fixture
def target(localstripe: LocalServer, recorder: RecordingHTTPClient) -> StripeTarget:
    """A StripeTarget on localstripe, recording its requests, with a generous rate limit."""
    return StripeTarget(TEST_KEY, base_url=localstripe.url, rate_limit=1000.0, http_client=recorder)


@pytest.fixture
def make_ops() -> Callable[..., list[Operation]]:
    """Build a realistic batch: catalog plus ``n`` customers with subscriptions."""

    def make(
        uid: str,
        n: int = 4,
        *,
        anchor: int | None = None,
        schedule_every: int = 0,
        batch: str | None = None,
    ) -> list[Operation]:
        b = batch or f"batch_{uid}"
        return catalog_ops(b, uid) + customer_ops(
            b, uid, n, anchor=anchor or anchor_in(), schedule_every=schedule_every
        )

    return make
