"""Rolling-window rate limits for requests and tokens (plain code; no Ray, time is passed in).

The rule is the one providers state and the simulator enforces (`executor/sim/limits.py`): at
most `requests_per_minute * window_s / 60` requests and `tokens_per_minute * window_s / 60`
tokens in ANY window of `window_s` seconds (60 s: the per-minute limit itself; a shorter
window enforces the same rate at a finer grain, and lets tests run the rule in seconds).

`WindowLimit` is the algorithm: a log of grants (time, requests, tokens); a grant is made
only if the window ending now, with it added, stays within both limits; otherwise the caller
is told exactly when enough of the log will have aged out. It counts over `window_s + guard_s`
because a grant reaches the provider a little later than it was made (RPC reply, the send,
the server's own queue); with the guard, calls granted in one provider window were all in one
limiter window. Tokens are not known before a call: the caller asks with an `Ask` (the
prompt's upper bound, n, max_tokens, and how many provider requests the attempt makes: n when
the provider takes one sample per request) and the limiter reserves the prompt bound per
request plus n x max_tokens (`estimated=False`: what OpenAI and Anthropic count on arrival) or
n x its completion estimate from the replies it has settled so far (`CompletionEstimate`; the
full max_tokens until enough were seen), computed when the grant is made; the grant is then
`settle`d to the tokens the provider counted.

`AsyncRateLimiter` is one process's limiter (coroutines queue first come, first served);
`w4s_ray.runtime.rate_limiter` hosts a `WindowLimit` in a Ray actor so the limit holds across
every worker of a run (and of several runs, when named).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


def per_window(per_minute: float | None, window_s: float) -> float | None:
    """A per-minute limit as the amount allowed in one window of `window_s` seconds."""
    return None if not per_minute else per_minute * window_s / 60.0


@dataclass(frozen=True)
class Ask:
    """What one attempt may be charged, for a limiter to size its reservation WHEN it grants
    it: `requests` provider requests (1, or n when the provider takes one sample per request),
    each with a prompt of at most `prompt` tokens, and `n` samples of at most `max_tokens` each.
    `estimated`: reserve n x the completion estimate (the full `max_tokens` until the limiter
    has seen replies) instead of n x max_tokens. Sized at grant time, a call that waited behind
    others is reserved with what their replies showed, not with the cold-start bound."""

    prompt: int
    n: int
    max_tokens: int
    requests: int = 1
    estimated: bool = True

    def tokens(self, estimate: CompletionEstimate | None) -> int:
        per = (estimate.per_sample(self.max_tokens) if estimate is not None and self.estimated
               else self.max_tokens)
        return self.prompt * max(1, int(self.requests)) + int(per) * int(self.n)


def reservation(ask: Ask | float, estimate: CompletionEstimate | None) -> float:
    """Tokens to reserve for `ask` (a plain number is reserved as it is)."""
    return float(ask.tokens(estimate)) if isinstance(ask, Ask) else float(ask)


def requests_of(ask: Ask | float) -> float:
    """Provider requests `ask` stands for (a plain number of tokens is one request)."""
    return float(max(1, int(ask.requests))) if isinstance(ask, Ask) else 1.0


def token_upper_bound(messages: list[dict], n: int, max_tokens: int) -> int:
    """Tokens a call can be charged at most: prompt bytes (a byte-level BPE token is at least
    one UTF-8 byte), chat framing (4 per message, 3 for the reply) and `max_tokens` per sample."""
    prompt = 3
    for m in messages:
        c = m.get("content")
        if isinstance(c, list):
            c = " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
        prompt += 4 + len(str(c or "").encode()) + len(str(m.get("role", "")).encode())
    return prompt + int(max_tokens) * int(n)


class CompletionEstimate:
    """Completion tokens per sample to reserve, from the replies seen so far: 1.5 x the largest
    of the last `keep` (+16), never above the call's max_tokens; None until `warmup` replies
    were seen (reserve the full bound until then). Workflows ask for max_tokens=4096 and get a
    few hundred: reserving the bound would hold ~10x the tokens the calls use."""

    def __init__(self, keep: int = 256, warmup: int = 8) -> None:
        self._seen: deque[int] = deque(maxlen=keep)
        self.warmup = warmup

    def observe(self, completion_tokens: int, n: int) -> None:
        self._seen.append(-(-int(completion_tokens) // max(1, int(n))))

    def per_sample(self, max_tokens: int) -> int:
        if len(self._seen) < self.warmup:
            return int(max_tokens)
        return min(int(max_tokens), int(max(self._seen) * 1.5) + 16)


class WindowLimit:
    """Requests and tokens per rolling window; either limit may be None (unlimited).

    `reserve(tokens, now)` returns `(grant_id, 0.0)` when granted, else `(None, wait_s)`: the
    seconds after which the same reservation would fit (if nothing else is granted first).
    """

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 window_s: float = 60.0, guard_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if window_s <= 0 or guard_s < 0:
            raise ValueError("window_s must be positive and guard_s non-negative")
        self.max_requests = per_window(requests_per_minute, window_s)
        self.max_tokens = per_window(tokens_per_minute, window_s)
        if self.max_requests is not None and self.max_requests < 1:
            raise ValueError(f"requests_per_minute={requests_per_minute} allows less than one "
                             f"request per {window_s:g} s window")
        self.span = window_s + guard_s
        self.clock = clock
        self._log: deque[list] = deque()  # [t, requests, tokens, id], in grant order
        self._by_id: dict[int, list] = {}
        self._ids = itertools.count(1)
        self.requests = 0.0  # in the current span
        self.tokens = 0.0

    @property
    def unlimited(self) -> bool:
        return self.max_requests is None and self.max_tokens is None

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.span:
            t, r, k, gid = self._log.popleft()
            self.requests -= r
            self.tokens -= k
            self._by_id.pop(gid, None)
        if not self._log:  # no float drift across an idle gap
            self.requests = self.tokens = 0.0

    def _fits(self, req: float, tok: float) -> bool:
        ok_r = self.max_requests is None or self.requests + req <= self.max_requests + 1e-9
        ok_t = self.max_tokens is None or self.tokens + tok <= self.max_tokens + 1e-9
        return ok_r and ok_t

    def _cap(self, tokens: float) -> float:
        # A call larger than a whole window is let through alone (an empty window), never
        # refused forever; the provider decides whether it is too large.
        return min(float(tokens), self.max_tokens) if self.max_tokens is not None else 0.0

    def _cap_requests(self, requests: float) -> float:
        # Likewise a fan-out of more requests than a window holds goes alone.
        req = max(1.0, float(requests))
        return min(req, self.max_requests) if self.max_requests is not None else req

    def reserve(self, tokens: float, now: float | None = None,
                requests: float = 1.0) -> tuple[int | None, float]:
        """Grant `requests` provider requests charged `tokens` in all, or say how long to wait."""
        now = self.clock() if now is None else now
        if self.unlimited:
            return 0, 0.0
        self._expire(now)
        tok, want = self._cap(tokens), self._cap_requests(requests)
        if self._fits(want, tok):
            gid = next(self._ids)
            entry = [now, want, tok, gid]
            self._log.append(entry)
            self._by_id[gid] = entry
            self.requests += want
            self.tokens += tok
            return gid, 0.0
        # Walk the log oldest first until enough has aged out for this reservation to fit.
        req, used = self.requests, self.tokens
        for t, r, k, _ in self._log:
            req -= r
            used -= k
            if ((self.max_requests is None or req + want <= self.max_requests + 1e-9)
                    and (self.max_tokens is None or used + tok <= self.max_tokens + 1e-9)):
                return None, max(1e-3, t + self.span - now)
        return None, self.span  # unreachable: an empty log always fits

    def settle(self, grant_id: int | None, tokens: float | None,
               requests: float | None = None) -> None:
        """The grant's call was charged `tokens` (None: unknown, keep the reservation) and made
        `requests` provider requests (None: as granted): the log holds what was charged."""
        entry = self._by_id.get(grant_id) if grant_id else None
        if entry is None:
            return
        if requests is not None:
            new_r = max(1.0, float(requests))
            self.requests -= entry[1] - new_r
            entry[1] = new_r
        if tokens is None:
            return
        new = max(0.0, float(tokens))
        self.tokens -= entry[2] - new
        entry[2] = new

    def release(self, grant_id: int | None) -> None:
        """The grant was never used (nothing was sent): give it back."""
        entry = self._by_id.pop(grant_id, None) if grant_id else None
        if entry is not None:
            self.requests -= entry[1]
            self.tokens -= entry[2]
            entry[1] = entry[2] = 0.0

    def usage(self, now: float | None = None) -> dict:
        now = self.clock() if now is None else now
        self._expire(now)
        return {"requests": self.requests, "tokens": self.tokens,
                "max_requests": self.max_requests, "max_tokens": self.max_tokens,
                "span_s": self.span}


class AsyncRateLimiter:
    """One process's limiter: `grant = await acquire(tokens)`, then `settle(grant, used, usd)`."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None,
                 window_s: float = 60.0, guard_s: float = 0.0) -> None:
        self.limit = WindowLimit(requests_per_minute, tokens_per_minute, window_s, guard_s)
        self.estimate = CompletionEstimate()  # from every reply this limiter settles
        self.waited_s = 0.0
        self._locks: dict[int, tuple[asyncio.Lock, asyncio.Event]] = {}

    def _lock(self) -> tuple[asyncio.Lock, asyncio.Event]:
        key = id(asyncio.get_running_loop())
        if key not in self._locks:
            self._locks[key] = (asyncio.Lock(), asyncio.Event())
        return self._locks[key]

    def _wake(self) -> None:
        for _, freed in self._locks.values():
            freed.set()

    async def acquire(self, ask: Ask | float) -> int | None:
        lock, freed = self._lock()
        async with lock:  # first come, first served: a big call is not starved
            while True:
                gid, wait = self.limit.reserve(reservation(ask, self.estimate),
                                               requests=requests_of(ask))
                if gid is not None:
                    return gid
                t0 = time.monotonic()
                freed.clear()  # woken early when a settle frees reserved tokens
                try:
                    await asyncio.wait_for(freed.wait(), wait)
                except TimeoutError:
                    pass
                self.waited_s += time.monotonic() - t0

    def settle(self, grant: int | None, tokens: float | None, cost_usd: float = 0.0,
               completion: tuple[int, int] | None = None, requests: int | None = None) -> None:
        """After an attempt: the tokens it was charged (None: unknown; `cost_usd` matters to
        shared limiters), `completion` = (completion tokens, samples) of its reply and the
        provider requests it made (None: as granted)."""
        if completion is not None:
            self.estimate.observe(*completion)
        self.limit.settle(grant, tokens, requests)
        if tokens is not None:
            self._wake()

    def release(self, grant: int | None) -> None:
        """A grant that was never used: nothing was sent."""
        self.limit.release(grant)
        self._wake()
