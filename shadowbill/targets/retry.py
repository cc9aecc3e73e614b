"""When and how long to wait before retrying a request to Stripe.

The rules follow Stripe's guidance (https://docs.stripe.com/error-low-level and
https://docs.stripe.com/api/idempotent_requests): a ``Stripe-Should-Retry`` response header
decides when present; otherwise 429, 5xx, connection errors and timeouts are retried with
exponential backoff and jitter, a 409 only when the idempotency key is still in use by a
concurrent request, and no other 4xx ever. ``Retry-After`` (seconds) lengthens the wait.
Writes are safe to retry because every create carries the same Idempotency-Key: Stripe
replays the first response for that key.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

RETRYABLE_409_CODES: Final = frozenset({"idempotency_key_in_use", "lock_timeout"})


@dataclass(frozen=True)
class RetryDecision:
    """Whether to retry, and the seconds to wait before the next attempt."""

    retry: bool
    delay: float = 0.0
    reason: str = ""


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    lower = name.lower()
    for key, value in headers.items():
        if str(key).lower() == lower:
            return str(value)
    return None


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter, bounded attempts, and Stripe's retry headers."""

    max_retries: int = 6
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    rng: random.Random | None = None

    def backoff(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based): capped doubling, 50-100% jitter."""
        base = min(self.initial_delay * (2 ** max(0, attempt - 1)), self.max_delay)
        rng = self.rng or random
        return base * (0.5 + 0.5 * rng.random())

    def decide(
        self,
        attempt: int,
        *,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        connection_error: bool = False,
    ) -> RetryDecision:
        """Decide about the failed attempt number ``attempt`` (1-based) from what came back."""
        if attempt > self.max_retries:
            return RetryDecision(False, reason="retries exhausted")
        should = _header(headers, "Stripe-Should-Retry")
        if should is not None and should.strip().lower() == "false":
            return RetryDecision(False, reason="Stripe-Should-Retry: false")
        if should is not None and should.strip().lower() == "true":
            retryable, reason = True, "Stripe-Should-Retry: true"
        elif connection_error or status is None:
            retryable, reason = True, "connection error or timeout"
        elif status == 429:
            retryable, reason = True, "rate limited (429)"
        elif status >= 500:
            retryable, reason = True, f"server error ({status})"
        elif status == 409 and code in RETRYABLE_409_CODES:
            retryable, reason = True, f"conflict ({code})"
        else:
            return RetryDecision(False, reason=f"not retryable ({status})")
        delay = self.backoff(attempt)
        after = _header(headers, "Retry-After")
        if after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date or garbage: keep the backoff
                delay = max(delay, min(float(after), self.max_retry_after))
        return RetryDecision(retryable, delay, reason)
