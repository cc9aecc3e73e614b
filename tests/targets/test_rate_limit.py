"""The token bucket: exact pacing on a fake clock, thread safety, and a real run's rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe_cases import TEST_KEY

from shadowbill.rehearsal.local_server import LocalServer
from shadowbill.targets.model import Operation
from shadowbill.targets.rate_limit import (
    STRIPE_LIVE_OPS_PER_SECOND,
    STRIPE_SEARCH_READS_PER_SECOND,
    FakeClock,
    TokenBucket,
)
from shadowbill.targets.stripe_api import StripeTarget


def test_documented_limits() -> None:
    assert STRIPE_LIVE_OPS_PER_SECOND == 100.0
    assert STRIPE_SEARCH_READS_PER_SECOND == 20.0


@pytest.mark.parametrize("rate", [1.0, 25.0, 100.0, 333.0])
def test_sustained_rate_equals_the_limit_on_a_fake_clock(rate: float) -> None:
    clock = FakeClock(1000.0)
    bucket = TokenBucket(rate, clock=clock.now, sleep=clock.sleep)
    n = 501
    for _ in range(n):
        bucket.acquire()
    elapsed = clock.now() - 1000.0
    assert elapsed == pytest.approx((n - 1) / rate)
    assert (n - 1) / elapsed == pytest.approx(rate)
    assert bucket.granted == n


def test_burst_is_free_then_paced() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5, clock=clock.now, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.1, 0.1])


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=2, clock=clock.now, sleep=clock.sleep)
    bucket.acquire()
    clock.sleep(60)  # a long pause earns no more than the burst
    waits = [bucket.acquire() for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(0.1)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(10, burst=0.5)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=1.0, max_value=200.0),
    burst=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.2), min_size=1, max_size=80),
)
def test_no_window_exceeds_burst_plus_rate(rate: float, burst: int, gaps: list[float]) -> None:
    """Whatever the arrival pattern, grants in any window W are at most burst + W * rate."""
    now = [0.0]
    bucket = TokenBucket(rate, burst=burst, clock=lambda: now[0], sleep=lambda s: None)
    grants = []
    for gap in gaps:
        now[0] += gap
        grants.append(now[0] + bucket.reserve())
    grants.sort()
    for i, start in enumerate(grants):
        for j in range(i, len(grants)):
            window = grants[j] - start
            assert j - i + 1 <= burst + window * rate + 1e-6


def test_threads_never_beat_the_limit() -> None:
    rate, threads, each = 400.0, 8, 25
    bucket = TokenBucket(rate)
    started = time.monotonic()

    def work() -> None:
        for _ in range(each):
            bucket.acquire()

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    n = threads * each
    assert bucket.granted == n
    assert elapsed >= (n - 1) / rate * 0.98  # never faster than the limit


@pytest.mark.server
def test_real_apply_stays_under_the_configured_limit(
    localstripe: LocalServer, uid: str, record_property: Callable[[str, object], None]
) -> None:
    """Writes through the SDK to localstripe: never above the limit; the rate is recorded."""
    limit, n = 60.0, 60
    target = StripeTarget(
        TEST_KEY, base_url=localstripe.url, rate_limit=limit, search_lookups=False
    )
    ops = [
        Operation(f"b_{uid}", f"customer:{uid}_{i}", "customer", {"name": f"c{i}"})
        for i in range(n)
    ]
    report = target.apply(ops)
    assert report.ok and len(report.created) == n
    assert report.elapsed_seconds >= (n - 1) / limit * 0.98
    achieved = n / report.elapsed_seconds
    record_property("writes_per_second", round(achieved, 1))
    record_property("limit", limit)
    print(f"\nreal apply: {achieved:.1f} creates/s at a limit of {limit:.0f}/s")
