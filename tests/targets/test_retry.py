"""When StripeTarget retries: Stripe's headers first, then 429/5xx/connection errors only."""

from __future__ import annotations

import random

import pytest

from shadowbill.targets.retry import RetryPolicy


def policy(**kw: object) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(0), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_rate_limits_and_server_errors(status: int) -> None:
    assert policy().decide(1, status=status).retry


def test_retries_connection_errors_and_timeouts() -> None:
    assert policy().decide(1, status=None, connection_error=True).retry


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404])
def test_never_retries_other_client_errors(status: int) -> None:
    assert not policy().decide(1, status=status).retry


def test_409_only_while_the_idempotency_key_is_in_use() -> None:
    assert policy().decide(1, status=409, code="idempotency_key_in_use").retry
    assert not policy().decide(1, status=409, code="resource_already_exists").retry


def test_stripe_should_retry_header_decides() -> None:
    no = {"Stripe-Should-Retry": "false"}
    yes = {"stripe-should-retry": "true"}
    assert not policy().decide(1, status=503, headers=no).retry
    assert not policy().decide(1, status=429, headers=no).retry
    assert policy().decide(1, status=400, headers=yes).retry


def test_retry_after_lengthens_the_wait_within_a_cap() -> None:
    p = policy(max_retry_after=10.0)
    assert p.decide(1, status=429, headers={"Retry-After": "3"}).delay == pytest.approx(3.0)
    assert p.decide(1, status=429, headers={"Retry-After": "600"}).delay == pytest.approx(10.0)
    assert p.decide(1, status=429, headers={"Retry-After": "soon"}).delay < 1.0


def test_backoff_doubles_with_jitter_and_caps() -> None:
    p = policy(initial_delay=0.5, max_delay=4.0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delay = p.backoff(attempt)
        assert base * 0.5 <= delay <= base


def test_gives_up_after_max_retries() -> None:
    p = policy(max_retries=2)
    assert p.decide(2, status=500).retry
    assert not p.decide(3, status=500).retry
