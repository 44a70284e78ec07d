"""Token buckets for requests/minute and tokens/minute (plain code; no Ray, no asyncio state).

`TokenBucket` is the algorithm: a level that refills at `rate` per second up to `capacity`;
`take` either deducts or says how long to wait. `RateLimit` holds the request bucket and the
token bucket and grants both or neither. `AsyncRateLimiter` lets coroutines of one process
wait their turn; `w4s_ray.runtime.rate_limiter` hosts a `RateLimit` in a Ray actor so the
limit holds across every worker of a run. Token use is not known before a call, so callers
take an estimate and `settle` the difference afterwards (the bucket may go into debt, which
delays later callers: the limit holds on average, as providers enforce it).
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate_per_s: float, capacity: float, now: float | None = None):
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = float(rate_per_s)
        self.capacity = float(capacity)
        self.level = float(capacity)
        self.t = time.monotonic() if now is None else now

    def _refill(self, now: float) -> None:
        if now > self.t:
            self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
            self.t = now

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until `amount` can be taken (0 if now). Amounts above capacity need a full
        bucket, so a single huge request is never refused forever."""
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> float:
        wait = self.wait_for(amount, now)
        if wait == 0.0:
            self.level -= amount
        return wait

    def settle(self, amount: float, now: float) -> None:
        """Debit (positive) or credit (negative) after the fact."""
        self._refill(now)
        self.level = min(self.capacity, self.level - amount)


class RateLimit:
    """Requests/minute and tokens/minute; either may be None (unlimited)."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 burst_s: float = 1.0, now: float | None = None):
        def bucket(per_min: float | None) -> TokenBucket | None:
            if not per_min:
                return None
            rate = per_min / 60.0
            return TokenBucket(rate, max(1.0, rate * burst_s), now)

        self.requests = bucket(requests_per_minute)
        self.tokens = bucket(tokens_per_minute)

    @property
    def unlimited(self) -> bool:
        return self.requests is None and self.tokens is None

    def reserve(self, requests: float, tokens: float, now: float | None = None) -> float:
        """Take both or neither; returns 0 when granted, else seconds to wait before retrying."""
        now = time.monotonic() if now is None else now
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.wait_for(requests, now))
        if self.tokens is not None:
            waits.append(self.tokens.wait_for(tokens, now))
        wait = max(waits)
        if wait == 0.0:
            if self.requests is not None:
                self.requests.take(requests, now)
            if self.tokens is not None:
                self.tokens.take(tokens, now)
        return wait

    def settle(self, tokens: float, now: float | None = None) -> None:
        if self.tokens is not None and tokens:
            self.tokens.settle(tokens, time.monotonic() if now is None else now)


class AsyncRateLimiter:
    """One process's limiter: `await acquire(tokens)`, then `settle(actual - estimate)`."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self.limit = RateLimit(requests_per_minute, tokens_per_minute)
        self.waited_s = 0.0

    async def acquire(self, tokens: float) -> None:
        while True:
            wait = self.limit.reserve(1, tokens)
            if wait == 0.0:
                return
            self.waited_s += wait
            await asyncio.sleep(wait)

    def settle(self, tokens: float, cost_usd: float = 0.0) -> None:
        """Correct the token estimate after a call (`cost_usd` matters to shared limiters)."""
        self.limit.settle(tokens)
