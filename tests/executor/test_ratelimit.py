"""Token-bucket algorithm (no Ray, no sleeping: time is passed in)."""

from __future__ import annotations

import asyncio
import time

import pytest

from w4s_ray.executor.ratelimit import AsyncRateLimiter, RateLimit, TokenBucket


def test_bucket_starts_full_then_refills_at_rate():
    b = TokenBucket(rate_per_s=2.0, capacity=4.0, now=0.0)
    assert [b.take(1, 0.0) for _ in range(4)] == [0.0] * 4
    assert b.take(1, 0.0) == pytest.approx(0.5)  # empty: one token per 0.5 s
    assert b.take(1, 0.5) == 0.0
    assert b.take(1, 0.5) == pytest.approx(0.5)


def test_bucket_never_exceeds_capacity_after_idle():
    b = TokenBucket(rate_per_s=10.0, capacity=5.0, now=0.0)
    for _ in range(5):
        b.take(1, 0.0)
    granted = sum(1 for _ in range(100) if b.take(1, 1000.0) == 0.0)
    assert granted == 5


def test_request_larger_than_capacity_waits_for_full_bucket_then_goes_into_debt():
    b = TokenBucket(rate_per_s=1.0, capacity=10.0, now=0.0)
    b.take(10, 0.0)
    assert b.take(50, 0.0) == pytest.approx(10.0)
    assert b.take(50, 10.0) == 0.0
    assert b.level == pytest.approx(-40.0)
    assert b.take(1, 10.0) == pytest.approx(41.0)


def test_settle_debits_and_credits():
    b = TokenBucket(rate_per_s=1.0, capacity=100.0, now=0.0)
    b.take(50, 0.0)
    b.settle(30, 0.0)   # the call used 30 more tokens than estimated
    assert b.level == pytest.approx(20.0)
    b.settle(-500, 0.0)  # a credit never overfills
    assert b.level == pytest.approx(100.0)


def test_rate_limit_grants_both_or_neither():
    rl = RateLimit(requests_per_minute=600, tokens_per_minute=600, now=0.0)  # 10/s, burst 10
    assert rl.reserve(1, 10, now=0.0) == 0.0   # tokens bucket now empty
    req_level = rl.requests.level
    assert rl.reserve(1, 5, now=0.0) > 0.0     # refused on tokens ...
    assert rl.requests.level == req_level      # ... and no request permit was taken


def test_long_run_rate_is_bounded_by_rpm():
    rl = RateLimit(requests_per_minute=120, tokens_per_minute=None, now=0.0)  # 2/s, burst 2
    t, granted = 0.0, 0
    while t < 30.0:
        wait = rl.reserve(1, 0, now=t)
        if wait == 0.0:
            granted += 1
        else:
            t += wait
    assert 60 <= granted <= 60 + 2  # rate x time, plus at most one burst


def test_unlimited_when_no_rates():
    rl = RateLimit(None, None)
    assert rl.unlimited and rl.reserve(1, 1e9) == 0.0


def test_async_limiter_paces_coroutines():
    lim = AsyncRateLimiter(requests_per_minute=1200, tokens_per_minute=None)  # 20/s, burst 20

    async def run() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*[lim.acquire(0) for _ in range(30)])
        return time.monotonic() - t0

    elapsed = asyncio.run(run())
    # 20 from the burst, 10 more at 20/s: at least ~0.5 s of waiting was needed.
    assert lim.waited_s >= 0.4
    assert elapsed >= 0.4
