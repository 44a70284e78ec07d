"""The rolling-window limit (no Ray, no sleeping: an injected clock)."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from w4s_ray.executor.ratelimit import (
    Ask,
    AsyncRateLimiter,
    CompletionEstimate,
    WindowLimit,
    per_window,
    requests_of,
    reservation,
    token_upper_bound,
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_per_minute_limits_scale_to_the_window():
    assert per_window(600, 60.0) == 600
    assert per_window(600, 3.0) == 30
    assert per_window(None, 3.0) is None
    with pytest.raises(ValueError, match="less than one request"):
        WindowLimit(10, None, window_s=3.0)  # 0.5 requests per 3 s window


def test_window_admits_its_limit_then_says_exactly_when_the_oldest_ages_out():
    clock = Clock()
    lim = WindowLimit(requests_per_minute=60, tokens_per_minute=None, window_s=3.0, clock=clock)
    # 3 requests per 3 s window: one at t, t+1, t+2
    for dt in (0.0, 1.0, 2.0):
        clock.t = 1000.0 + dt
        gid, wait = lim.reserve(0)
        assert gid is not None and wait == 0.0
    gid, wait = lim.reserve(0)
    assert gid is None and wait == pytest.approx(1.0)  # the t=1000 grant leaves at 1003
    clock.t = 1003.0 - 1e-6
    assert lim.reserve(0)[0] is None
    clock.t = 1003.0
    assert lim.reserve(0)[0] is not None


def test_tokens_and_requests_are_granted_together_or_not_at_all():
    clock = Clock()
    lim = WindowLimit(600, 600, window_s=6.0, clock=clock)  # 60 requests, 60 tokens / window
    assert lim.reserve(50)[0] is not None
    before = lim.usage()
    gid, wait = lim.reserve(20)
    assert gid is None and wait == pytest.approx(6.0)
    assert lim.usage()["requests"] == before["requests"] == 1  # no request was taken


def test_settle_sets_a_reservation_to_what_was_charged():
    clock = Clock()
    lim = WindowLimit(None, 600, window_s=6.0, clock=clock)  # 60 tokens / window
    gid, _ = lim.reserve(50)  # an upper bound
    assert lim.reserve(20)[0] is None
    lim.settle(gid, 10)  # the reply said 10
    assert lim.usage()["tokens"] == pytest.approx(10)
    assert lim.reserve(20)[0] is not None
    lim.settle(gid, 35)  # an estimate that was low: the log holds what was charged
    assert lim.usage()["tokens"] == pytest.approx(55)
    lim.settle(gid, None)  # unknown: unchanged
    assert lim.usage()["tokens"] == pytest.approx(55)


def test_completion_estimate_starts_at_max_tokens_then_follows_replies():
    est = CompletionEstimate(keep=4, warmup=2)
    assert est.per_sample(4096) == 4096
    est.observe(300, 3)  # 100 per sample
    est.observe(80, 1)
    assert est.per_sample(4096) == 166  # 1.5 x 100 + 16
    assert est.per_sample(64) == 64
    for _ in range(4):
        est.observe(10, 1)  # the old maximum ages out of the last 4
    assert est.per_sample(4096) == 31


def test_release_gives_a_grant_back():
    clock = Clock()
    lim = WindowLimit(60, None, window_s=1.0, clock=clock)  # 1 request per second
    gid, _ = lim.reserve(0)
    assert lim.reserve(0)[0] is None
    lim.release(gid)
    assert lim.reserve(0)[0] is not None


def test_guard_lengthens_the_span_counted():
    clock = Clock()
    lim = WindowLimit(60, None, window_s=1.0, guard_s=0.25, clock=clock)
    lim.reserve(0)
    assert lim.reserve(0)[1] == pytest.approx(1.25)


def test_a_call_larger_than_a_window_goes_alone_instead_of_never():
    clock = Clock()
    lim = WindowLimit(None, 60, window_s=60.0, clock=clock)  # 60 tokens / window
    lim.reserve(10)
    gid, wait = lim.reserve(1000)
    assert gid is None and wait == pytest.approx(60.0)
    clock.t += 60.0
    assert lim.reserve(1000)[0] is not None


@pytest.mark.parametrize("max_ask", [8, 16])  # request-bound, token-bound
def test_no_window_ever_holds_more_than_the_limit_under_random_demand(max_ask):
    """Many askers retrying at the told times: every window of the log stays in the limit,
    and the demand is served close to the limit's rate. When tokens bind, capacity freed in
    pieces smaller than the next ask idles: with asks of ~8 % of a window (max_ask 16) that
    costs ~13 %; real limits (calls of 0.1-2 % of a minute's tokens) lose far less."""
    rng = random.Random(7)
    clock = Clock()
    lim = WindowLimit(requests_per_minute=300, tokens_per_minute=3000, window_s=2.0,
                      clock=clock)  # 10 requests, 100 tokens per 2 s
    granted: list[tuple[float, float]] = []
    asks = sorted((1000.0 + rng.uniform(0, 20), rng.randint(1, max_ask)) for _ in range(400))
    pending = list(asks)
    while pending:
        pending.sort()
        t, tok = pending.pop(0)
        clock.t = max(clock.t, t)
        gid, wait = lim.reserve(tok)
        if gid is None:
            pending.append((clock.t + wait, tok))
        else:
            granted.append((clock.t, tok))
    assert len(granted) == 400
    for i, (t0, _) in enumerate(granted):  # every window that starts at a grant
        inside = [k for t, k in granted[i:] if t < t0 + 2.0]
        assert len(inside) <= 10 and sum(inside) <= 100
    # ... and the limit was the bottleneck: the demand was served near the rate
    span = granted[-1][0] - granted[0][0]
    assert span <= 1.15 * max(400 / 10, sum(k for _, k in asks) / 100) * 2.0


def test_unlimited_grants_everything():
    lim = WindowLimit(None, None)
    assert lim.unlimited and lim.reserve(1e9) == (0, 0.0)


def test_token_upper_bound_is_at_least_the_simulator_count():
    from w4s_ray.executor.sim import tokens

    tokens.load()
    msgs = [{"role": "system", "content": "Solve: 12345 * 6789 = ?"},
            {"role": "user", "content": "Ünïcödé and emoji 🚀 and code `x = [i**2 for i in r]`"}]
    assert token_upper_bound(msgs, n=3, max_tokens=100) >= tokens.count_messages(msgs) + 300


def test_async_limiter_paces_coroutines_first_come_first_served():
    lim = AsyncRateLimiter(requests_per_minute=600, tokens_per_minute=None, window_s=0.5)

    async def run() -> list[float]:
        t0 = time.monotonic()
        times: list[float] = []

        async def one() -> None:
            await lim.acquire(0)
            times.append(time.monotonic() - t0)

        await asyncio.gather(*[one() for _ in range(12)])
        return times

    times = asyncio.run(run())
    # 5 per 0.5 s window: the first 5 at once, then 5 after 0.5 s, the last 2 after 1 s
    assert sorted(times)[4] < 0.25 and sorted(times)[5] >= 0.45 and sorted(times)[10] >= 0.95


def test_a_waiting_call_is_sized_when_granted_with_what_replies_showed_meanwhile():
    """A self-consistency call asked during a cold start (n=5 x max_tokens: more than a whole
    window) used to wait for an EMPTY window; sized at grant time, it goes as soon as the
    replies settled before it show what completions really cost."""
    lim = AsyncRateLimiter(requests_per_minute=None, tokens_per_minute=6000, window_s=10.0)
    big = Ask(prompt=50, n=5, max_tokens=400)
    assert reservation(big, lim.estimate) == 2050  # cold: the bound (over the 1,000 window)

    async def run() -> float:
        grants = [await lim.acquire(Ask(prompt=10, n=1, max_tokens=50)) for _ in range(8)]
        waiting = asyncio.ensure_future(lim.acquire(big))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # 480 reserved: the capped 1,000 does not fit
        t0 = time.monotonic()
        for g in grants:  # each reply: 10 completion tokens of one sample
            lim.settle(g, 20, completion=(10, 1))
        await asyncio.wait_for(waiting, 2.0)
        return time.monotonic() - t0

    assert asyncio.run(run()) < 1.0  # not the 10 s until the window empties
    # warm: the prompt bound + 5 x (1.5 x the largest completion seen + 16)
    assert reservation(big, lim.estimate) == 50 + 5 * (15 + 16)
    assert lim.limit.tokens == 8 * 20 + 50 + 5 * 31


def test_a_fan_out_is_counted_as_the_requests_it_makes():
    """An endpoint without `n` gets n requests for one call: the grant counts n requests and
    n prompts, a settle can correct the count, and a fan-out wider than a window goes alone."""
    clock = Clock()
    lim = WindowLimit(requests_per_minute=360, tokens_per_minute=None, window_s=1.0,
                      clock=clock)  # 6 requests per window
    fan = Ask(prompt=100, n=4, max_tokens=50, requests=4, estimated=False)
    assert reservation(fan, CompletionEstimate()) == 4 * 100 + 4 * 50
    assert requests_of(fan) == 4 and requests_of(Ask(10, 4, 50)) == 1 and requests_of(7.0) == 1
    gid, _ = lim.reserve(reservation(fan, None), requests=requests_of(fan))
    assert gid is not None and lim.requests == 4
    assert lim.reserve(0, requests=4) == (None, pytest.approx(1.0))  # 4 + 4 > 6
    one, _ = lim.reserve(0)
    lim.settle(one, None, requests=2)  # it turned into two requests: the log says so
    assert lim.requests == 6 and lim.reserve(0)[0] is None
    clock.t += 1.0
    gid, _ = lim.reserve(0, requests=9)  # wider than a window: alone, never starved
    assert gid is not None and lim.requests == 6


def test_the_estimate_is_used_only_for_estimated_asks():
    est = CompletionEstimate(warmup=1)
    est.observe(10, 1)
    assert reservation(Ask(5, 2, 400), est) == 5 + 2 * 31
    assert reservation(Ask(5, 2, 400, estimated=False), est) == 5 + 2 * 400
