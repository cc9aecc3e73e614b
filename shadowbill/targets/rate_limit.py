"""A thread-safe token bucket that paces API requests under the target's documented rate limit.

Stripe's basic rate limiter allows, per account and second, 100 read and 100 write
operations in live mode and 25 + 25 in test mode; its Search API allows 20 reads per second
(https://docs.stripe.com/rate-limits). The executor keeps one bucket per limit and takes a
token before every request, so a migration batch never provokes a 429 by itself.

The bucket is a reservation scheduler (GCRA): ``acquire`` books the next free slot under a
lock and sleeps outside it, so waiting threads are served in arrival order and the long-run
rate never exceeds ``rate``. The clock and sleep are injectable, which makes the pacing
testable without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

# Stripe's documented basic limits (https://docs.stripe.com/rate-limits), per second.
STRIPE_LIVE_OPS_PER_SECOND: Final = 100.0  # 100 reads and, separately, 100 writes
STRIPE_TEST_OPS_PER_SECOND: Final = 25.0
STRIPE_SEARCH_READS_PER_SECOND: Final = 20.0


class FakeClock:
    """A clock for tests: ``sleep`` advances ``now`` instantly; thread-safe."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current fake time in seconds."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Advance the fake time by ``seconds`` (never backwards)."""
        with self._lock:
            self._now += max(0.0, seconds)


class TokenBucket:
    """At most ``rate`` grants per second on average, with bursts of at most ``burst`` grants."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._interval = 1.0 / self.rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat: float | None = None  # theoretical arrival time of the next grant
        self.granted = 0
        self.waited = 0.0

    def reserve(self, tokens: int = 1) -> float:
        """Book ``tokens`` grants now; return how many seconds the caller must wait first."""
        with self._lock:
            now = self._clock()
            tat = now if self._tat is None else max(self._tat, now)
            wait = tat - now - (self.burst - 1.0) * self._interval
            wait = wait if wait > 1e-9 else 0.0  # float noise is not a wait
            self._tat = tat + tokens * self._interval
            self.granted += tokens
            self.waited += wait
            return wait

    def acquire(self, tokens: int = 1) -> float:
        """Block until ``tokens`` grants are available; return the seconds waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            self._sleep(wait)
        return wait
