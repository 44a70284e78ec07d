"""The run-wide rate limit and spend total, hosted in one Ray actor.

`RateLimiterActor` holds a `w4s_ray.executor.ratelimit.RateLimit` (the token-bucket algorithm)
and the dollars spent by every worker of a run. `SharedRateLimiter` is what an
`ExecutorClient` uses in a worker: it takes request and token permits from the actor in small
batches (so most calls need no actor round trip), and reports spend with each batch request
or, when no permits are needed, in fire-and-forget messages. Permits a worker holds are taken
from the global bucket already, so the global rate holds however they are spread.

Create it once per run with `get_rate_limiter(cfg.executor, name=...)` (a named actor: a
second call, from any worker, returns the same one) and pass the handle to each worker's
`ExecutorClient(cfg.executor, rate_limiter=SharedRateLimiter(handle))`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ray

from w4s_ray.config import ExecutorConfig
from w4s_ray.executor.ratelimit import RateLimit


@ray.remote(num_cpus=0, max_concurrency=64)
class RateLimiterActor:
    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 burst_s: float = 1.0):
        self.limit = RateLimit(requests_per_minute, tokens_per_minute, burst_s=burst_s)
        self.spent = 0.0
        self.granted_requests = 0.0
        self._lock = threading.Lock()  # max_concurrency > 1 runs methods in threads

    def reserve(self, requests: float, tokens: float, spend_delta: float = 0.0) -> tuple[float, float]:
        """Grant both permits or neither: (seconds to wait, 0 if granted; run spend so far)."""
        with self._lock:
            self.spent += spend_delta
            wait = self.limit.reserve(requests, tokens)
            if wait == 0.0:
                self.granted_requests += requests
            return wait, self.spent

    def settle(self, tokens: float, spend_delta: float = 0.0) -> float:
        with self._lock:
            self.limit.settle(tokens)
            self.spent += spend_delta
            return self.spent

    def snapshot(self) -> dict:
        with self._lock:
            return {"spent_usd": self.spent, "granted_requests": self.granted_requests,
                    "unlimited": self.limit.unlimited}


def get_rate_limiter(cfg: ExecutorConfig, name: str = "w4s-executor-limiter",
                     namespace: str | None = None, burst_s: float = 1.0):
    """The run's limiter actor (created on first use, then shared by name)."""
    return RateLimiterActor.options(
        name=name, namespace=namespace, get_if_exists=True, lifetime=None,
    ).remote(cfg.requests_per_minute, cfg.tokens_per_minute, burst_s)


class SharedRateLimiter:
    """A worker's view of the actor: batched permits, piggy-backed spend reports."""

    def __init__(self, handle: Any, batch: int = 4):
        self.handle = handle
        self.batch = max(1, batch)
        self._requests = 0.0
        self._tokens = 0.0
        self._unreported = 0.0
        self._known_run_spend = 0.0
        self._unlimited: bool | None = None
        self._alock: dict[int, asyncio.Lock] = {}
        self._pending: set = set()
        self._inflight = 0.0

    def _lock(self) -> asyncio.Lock:
        key = id(asyncio.get_running_loop())
        if key not in self._alock:
            self._alock[key] = asyncio.Lock()
        return self._alock[key]

    async def acquire(self, tokens: float) -> None:
        async with self._lock():
            if self._unlimited is None:
                snap = await self.handle.snapshot.remote()
                self._unlimited = bool(snap["unlimited"])
                self._known_run_spend = snap["spent_usd"]
            if self._unlimited:
                return
            if self._requests >= 1 and self._tokens >= tokens:
                self._requests -= 1
                self._tokens -= tokens
                return
            want_req = float(self.batch)
            want_tok = tokens * self.batch
            while True:
                delta, self._unreported = self._unreported, 0.0
                wait, run_spent = await self.handle.reserve.remote(want_req, want_tok, delta)
                self._known_run_spend = run_spent
                if wait == 0.0:
                    break
                if want_req > 1:  # under contention ask for less, so permits stay fair
                    want_req, want_tok = 1.0, tokens
                    continue
                await asyncio.sleep(wait)
            self._requests += want_req - 1
            self._tokens += want_tok - tokens

    def settle(self, tokens: float, cost_usd: float) -> None:
        """After a call: correct the token estimate and report the dollars (fire and forget)."""
        delta = self._unreported + cost_usd
        self._unreported = 0.0
        ref = self.handle.settle.remote(0.0 if self._unlimited else tokens, delta)
        self._inflight += delta
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no running loop: the message is sent, its reply is not awaited
            self._inflight -= delta
            return
        task = asyncio.ensure_future(self._update(ref, delta))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _update(self, ref, delta: float) -> None:
        try:
            self._known_run_spend = max(self._known_run_spend, await ref)
        finally:
            self._inflight -= delta

    def run_spent(self, local_spent: float) -> float:
        """The run's spend as last heard from the actor plus what is not yet reported."""
        return max(self._known_run_spend + self._inflight + self._unreported, local_spent)
