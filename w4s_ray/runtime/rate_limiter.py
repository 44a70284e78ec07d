"""The run-wide rate limit and spend total, hosted in one Ray actor.

`RateLimiterActor` holds a `w4s_ray.executor.ratelimit.WindowLimit` (the rolling-window
algorithm) and the dollars spent by every worker of a run. `SharedRateLimiter` is what an
`ExecutorClient` uses in a worker: before EVERY attempt of a call (retries included, since the
provider counts each) it asks the actor for one grant; the actor queues the askers first come,
first served and answers when the grant fits the window, so one round trip per attempt and no
polling. After the attempt the worker settles the grant to the tokens the reply reports (fire
and forget, with the dollars). A grant that took longer than the guard to come back is given
back and asked for again, so a slow reply never sends a request later than the window allows.

Scope: `get_rate_limiter(cfg.executor, name=...)` creates the actor or returns the existing
one of that name. A run (a sweep, an `EvaluatorPool`) makes one; with
`executor.shared_limiter` set, every run on the cluster that names the same limiter shares one
detached actor in the "w4s" namespace (its limits must match, else `ConfigError`).
Not done here: limits per node or per key (one actor holds one endpoint's limit).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray

from w4s_ray.config import ExecutorConfig
from w4s_ray.errors import ConfigError
from w4s_ray.executor.ratelimit import (
    Ask,
    CompletionEstimate,
    WindowLimit,
    requests_of,
    reservation,
    token_upper_bound,
)

SHARED_NAMESPACE = "w4s"
# What `ExecutorClient.preflight` can be charged: its one call precedes the run's limiter.
PREFLIGHT_TOKENS = token_upper_bound(
    [{"role": "user", "content": "Reply with the single word OK."}], 1, 16)


@ray.remote(num_cpus=0, max_concurrency=10_000)
class RateLimiterActor:
    """Async actor: every method runs on one event loop, so no locks beyond the FIFO queue."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 window_s: float = 60.0, guard_s: float = 0.5,
                 preflight_tokens: float = 0.0) -> None:
        self.limit = WindowLimit(requests_per_minute, tokens_per_minute, window_s, guard_s)
        # Run-wide: every worker's replies size every later reservation (a worker's own
        # estimate would stay cold through a first burst of its calls).
        self.estimate = CompletionEstimate()
        self.params = (requests_per_minute, tokens_per_minute, window_s, guard_s)
        self.spent = 0.0
        self.granted = 0
        self.released = 0
        self.waited_s = 0.0
        self._queue: asyncio.Lock | None = None
        self._freed: asyncio.Event | None = None
        self.recent: list[tuple[float, float]] = []  # (asked at, waited) of the last grants
        if preflight_tokens and not self.limit.unlimited:
            # The run's preflight call went out just before this actor existed: count it.
            self.limit.reserve(preflight_tokens)

    async def acquire(self, tokens: Ask | float, spend_delta: float = 0.0
                      ) -> tuple[int | None, float, float]:
        """(grant id, seconds this ask waited here, run spend). Returns once granted."""
        self.spent += spend_delta
        if self.limit.unlimited:
            return 0, 0.0, self.spent
        if self._queue is None:  # created on the actor's loop
            self._queue, self._freed = asyncio.Lock(), asyncio.Event()  # the Lock is FIFO
        t0 = time.monotonic()
        async with self._queue:
            while True:
                gid, wait = self.limit.reserve(reservation(tokens, self.estimate),
                                                requests=requests_of(tokens))
                if gid is not None:
                    break
                # Until the oldest grant ages out, or a settle/release frees tokens sooner.
                self._freed.clear()
                try:
                    await asyncio.wait_for(self._freed.wait(), wait)
                except TimeoutError:
                    pass
        waited = time.monotonic() - t0
        self.recent.append((round(t0, 3), round(waited, 3)))
        del self.recent[:-200]
        self.granted += int(requests_of(tokens))
        self.waited_s += waited
        return gid, waited, self.spent

    async def settle(self, grant: int | None, tokens: float | None,
                     spend_delta: float = 0.0, completion: tuple[int, int] | None = None,
                     requests: int | None = None) -> float:
        if completion is not None:
            self.estimate.observe(*completion)
        self.limit.settle(grant, tokens, requests)
        self.spent += spend_delta
        if self._freed is not None and grant:
            self._freed.set()
        return self.spent

    async def release(self, grant: int | None) -> None:
        self.limit.release(grant)
        self.released += 1
        if self._freed is not None:
            self._freed.set()

    async def snapshot(self) -> dict:
        return {"spent_usd": self.spent, "granted_requests": self.granted,
                "released": self.released, "waited_s": round(self.waited_s, 3),
                "unlimited": self.limit.unlimited, "params": list(self.params),
                "window": self.limit.usage(), "recent": list(self.recent)}


def get_rate_limiter(cfg: ExecutorConfig, name: str = "w4s-executor-limiter",
                     namespace: str | None = None,
                     preflight_tokens: float = PREFLIGHT_TOKENS, scheduling_strategy: Any = None):
    """The run's limiter actor (created on first use, then shared by name).

    With `cfg.shared_limiter` set, that name in the "w4s" namespace, detached (it outlives the
    run, so the next run on the cluster counts this one's calls); a limiter of that name with
    other limits is refused rather than silently obeyed. A new limiter starts holding one
    preflight-sized grant (`check_executor` made that call just before). `scheduling_strategy`:
    where the actor goes (runtime.placement pins it to the driver's node)."""
    params = [cfg.requests_per_minute, cfg.tokens_per_minute, cfg.rate_limit_window_s,
              cfg.rate_limit_guard_s]
    if cfg.shared_limiter:
        handle = RateLimiterActor.options(
            name=cfg.shared_limiter, namespace=SHARED_NAMESPACE, get_if_exists=True,
            lifetime="detached", scheduling_strategy=scheduling_strategy,
        ).remote(*params, preflight_tokens)
        have = ray.get(handle.snapshot.remote(), timeout=60)["params"]
        if list(have) != params:
            raise ConfigError(
                f"executor.shared_limiter {cfg.shared_limiter!r} already runs on this cluster "
                f"with requests_per_minute, tokens_per_minute, window, guard = {have}, not "
                f"{params}: use the same limits or another name")
        return handle
    return RateLimiterActor.options(
        name=name, namespace=namespace, get_if_exists=True, lifetime=None,
        scheduling_strategy=scheduling_strategy,
    ).remote(*params, preflight_tokens)


class SharedRateLimiter:
    """A worker's view of the actor: one grant per attempt, spend piggy-backed on messages."""

    def __init__(self, handle: Any, guard_s: float = 0.5):
        self.handle = handle
        self.guard_s = guard_s
        self._unreported = 0.0
        self._known_run_spend = 0.0
        self._unlimited: bool | None = None
        self._pending: set = set()
        self._inflight = 0.0
        self.regrants = 0

    async def acquire(self, tokens: Ask | float) -> int | None:
        if self._unlimited is None:
            snap = await self.handle.snapshot.remote()
            self._unlimited = bool(snap["unlimited"])
            self._known_run_spend = snap["spent_usd"]
        if self._unlimited:  # a budget only: no grant needed, spend travels with settle
            return 0
        while True:
            delta, self._unreported = self._unreported, 0.0
            t0 = time.monotonic()
            gid, waited, run_spent = await self.handle.acquire.remote(tokens, delta)
            self._known_run_spend = run_spent
            # The round trip minus the wait in the actor bounds how long ago the grant was
            # made; past the guard, the request could reach the provider after its window
            # moved on, so the grant is given back and asked for again.
            if time.monotonic() - t0 - waited <= self.guard_s:
                return gid
            self.regrants += 1
            self.handle.release.remote(gid)

    def release(self, grant: int | None) -> None:
        """A grant that was never used (nothing was sent): give it back."""
        if not self._unlimited:
            self.handle.release.remote(grant)

    def settle(self, grant: int | None, tokens: float | None, cost_usd: float,
               completion: tuple[int, int] | None = None, requests: int | None = None) -> None:
        """After an attempt: its charged tokens (None: unknown), dollars, the reply's
        (completion tokens, samples) for the run's estimate and the provider requests it made
        (None: as granted) (fire and forget)."""
        delta = self._unreported + cost_usd
        self._unreported = 0.0
        if self._unlimited and not delta:
            return
        ref = self.handle.settle.remote(None if self._unlimited else grant, tokens, delta,
                                        None if self._unlimited else completion,
                                        None if self._unlimited else requests)
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

    async def refresh(self) -> None:
        """Ask the actor for the run's spend now (before a budget check without a grant)."""
        snap = await self.handle.snapshot.remote()
        self._known_run_spend = max(self._known_run_spend, snap["spent_usd"])
        self._unlimited = bool(snap["unlimited"])

    def run_spent(self, local_spent: float) -> float:
        """The run's spend as last heard from the actor plus what is not yet reported."""
        return max(self._known_run_spend + self._inflight + self._unreported, local_spent)
