"""`ExecutorClient`: every call to the strong model goes through here.

One call = cache lookup per sample -> budget check -> bounded concurrency -> rate limit ->
one attempt through the transport (`executor/transport.py`: plain HTTP for OpenAI-compatible
routes with an api_base, else `litellm.acompletion`) with our retry policy -> validation ->
cost from litellm's price map -> cache write -> ledger. Everything but the single attempt is
shared by both transports. litellm's own retries are off (`num_retries=0`, and the OpenAI
SDK's `max_retries=0`): its retry wrapper neither honours Retry-After with jitter nor reports
one clear cause, so the policy lives here: exponential backoff with full jitter, at least the
server's Retry-After, at most `retry_max_delay_s` per wait and `max_retries` retries.
A call that still fails raises `ExecutorError` naming the cause; a reply is never "".

Cost and tokens in a `ChatResult` are what this call paid; samples served from the cache cost
nothing and count as saved dollars in `stats()`. The budget (`budget_usd`) is checked before
each paid call, against this client's spend plus, with a shared rate limiter, the run's spend
reported by every worker; calls already in flight finish. Fully cached calls stay allowed
after the budget is spent, since they are free.

All calls run on one background event loop per process (`_io_loop`); `chat` can be awaited
from any loop and `chat_sync` called from any thread.

Not done here: streaming, tool calls, per-call model overrides (the model is the config's).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.config import ExecutorConfig
from w4s_ray.env import apply_offline_defaults
from w4s_ray.errors import BudgetExceeded, ExecutorError, ExecutorUnreachable
from w4s_ray.executor.cache import CacheEntry, CompletionCache, sample_key
from w4s_ray.executor.cost import cost_usd, resolve_price_model
from w4s_ray.executor.keys import redact, resolve_api_key
from w4s_ray.executor.ratelimit import AsyncRateLimiter
from w4s_ray.executor.transport import classify, make_transport


@dataclass
class ChatResult:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: list[bool] = field(default_factory=list)


_IO_LOOP: asyncio.AbstractEventLoop | None = None
_IO_LOCK = threading.Lock()


def _io_loop() -> asyncio.AbstractEventLoop:
    """The process's one executor I/O loop (a daemon thread), started on first use.

    Every executor call runs here, whatever loop or thread the caller is on: litellm keeps
    HTTP clients and a logging worker bound to the loop that first used them, and so does the
    HTTP transport's shared aiohttp session, so calls from short-lived loops (asyncio.run per
    stage, pytest) would leak tasks or hit closed loops. It also makes `max_concurrency` a true
    per-process bound and lets one connection pool serve every caller of the process.
    """
    global _IO_LOOP
    with _IO_LOCK:
        if _IO_LOOP is None or _IO_LOOP.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="w4s-executor-io", daemon=True).start()
            _IO_LOOP = loop
        return _IO_LOOP


def derive_seed(run_seed: int, occurrence: int) -> int:
    digest = hashlib.sha256(f"w4s-seed:{run_seed}:{occurrence}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _normalise_response_format(rf: Any) -> dict | None:
    if rf is None or rf == "text":
        return None
    if rf in ("json", "json_object"):
        return {"type": "json_object"}
    if isinstance(rf, dict):
        return rf
    raise ExecutorError(f"response_format {rf!r}: expected 'text', 'json', 'json_object' or a dict")


def _check_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ExecutorError("messages must be a non-empty list of {role, content} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ExecutorError(f"messages[{i}] must be a dict with 'role' and 'content'")
        content = m["content"]
        out.append({"role": str(m["role"]),
                    "content": content if isinstance(content, (str, list)) else str(content)})
    return out


class _Prices:
    """Dollars for (prompt, completion) tokens from litellm's price map, cheaply.

    `litellm.cost_per_token` costs ~0.3 ms of CPU per call here (more than a whole HTTP
    exchange). When the entry's price is linear in tokens (checked against litellm at points
    up to 1M tokens, so tiered "above 128k" prices are caught) the two per-token rates are
    read once; otherwise every call asks litellm.
    """

    _PROBES = ((1, 1), (977, 313), (150_000, 40_000), (1_000_000, 250_000))

    def __init__(self, price_model: str) -> None:
        import litellm

        self.price_model = price_model
        rate_in, _ = litellm.cost_per_token(model=price_model, prompt_tokens=1,
                                            completion_tokens=0)
        _, rate_out = litellm.cost_per_token(model=price_model, prompt_tokens=0,
                                             completion_tokens=1)
        self._rates: tuple[float, float] | None = (float(rate_in), float(rate_out))
        for pt, ct in self._PROBES:
            want = cost_usd(price_model, pt, ct)
            got = self._linear(pt, ct)
            if abs(got - want) > 1e-12 * max(abs(want), 1e-30):
                self._rates = None
                break

    def _linear(self, pt: int, ct: int) -> float:
        a, b = self._rates  # type: ignore[misc]
        return float(pt * a) + float(ct * b)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self._rates is None:
            return cost_usd(self.price_model, prompt_tokens, completion_tokens)
        return self._linear(prompt_tokens, completion_tokens)


class ExecutorClient:
    """Async client of the strong executor model; see the module docstring for the policy."""

    def __init__(self, cfg: ExecutorConfig, rate_limiter: Any = None):
        apply_offline_defaults()
        import litellm

        litellm.suppress_debug_info = True  # litellm prices every call, whichever transport
        self.cfg = cfg
        self.price_model = resolve_price_model(cfg.model, cfg.pricing_model)
        self._prices = _Prices(self.price_model)
        self._key = resolve_api_key(cfg)
        self.transport = make_transport(cfg, self._key)
        self.cache = CompletionCache(cfg.cache.path) if cfg.cache.enabled else None
        if rate_limiter is not None:
            # Injected by the caller: e.g. `runtime.rate_limiter.SharedRateLimiter` over the run's
            # limiter actor. Anything with `acquire(tokens)`, `settle(tokens, cost_usd)` and
            # (optionally) `run_spent(local_usd)` will do; this module knows no Ray.
            self._limiter: Any = rate_limiter
        elif cfg.requests_per_minute or cfg.tokens_per_minute:
            self._limiter = AsyncRateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        else:
            self._limiter = None
        self._sem: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._stats: dict[str, float] = defaultdict(float)
        self.ledger: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    # ------------------------------------------------------------------ accounting

    def _bump(self, **kv: float) -> None:
        with self._lock:
            for k, v in kv.items():
                self._stats[k] += v

    def _book(self, tags: dict | None, **kv: float) -> None:
        key = tuple(sorted((str(k), str(v)) for k, v in (tags or {}).items()))
        with self._lock:
            row = self.ledger[key]
            for k, v in kv.items():
                row[k] += v

    def spent_usd(self) -> float:
        return float(self._stats["cost_usd"])

    def spend_by(self, tag: str) -> dict[str, float]:
        """Dollars per value of one tag (e.g. "candidate"), summed over the ledger."""
        out: dict[str, float] = defaultdict(float)
        with self._lock:
            for key, row in self.ledger.items():
                value = dict(key).get(tag)
                if value is not None:
                    out[value] += row["cost_usd"]
        return dict(out)

    def stats(self) -> dict:
        with self._lock:
            s = dict(self._stats)
        keys = ("calls", "api_calls", "cache_hits", "cache_misses", "saved_usd", "cost_usd",
                "prompt_tokens", "completion_tokens", "errors", "retries")
        out = {k: s.get(k, 0) for k in keys}
        for k in ("calls", "api_calls", "cache_hits", "cache_misses", "prompt_tokens",
                  "completion_tokens", "errors", "retries"):
            out[k] = int(out[k])
        out["tokens"] = out["prompt_tokens"] + out["completion_tokens"]
        out["budget_usd"] = self.cfg.budget_usd
        out["run_spent_usd"] = self._run_spent()
        return out

    def _run_spent(self) -> float:
        if self._limiter is not None and hasattr(self._limiter, "run_spent"):
            return self._limiter.run_spent(self.spent_usd())
        return self.spent_usd()

    # ------------------------------------------------------------------ the call

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:  # created on the I/O loop, the only loop that uses it
            self._sem = asyncio.Semaphore(self.cfg.max_concurrency)
        return self._sem

    async def chat(self, messages: list[dict], temperature: float | None = None, n: int = 1,
                   response_format: Any = None, max_tokens: int | None = None,
                   occurrence: int = 0, tags: dict | None = None) -> ChatResult:
        """One chat completion with `n` samples; see the module docstring for the policy."""
        coro = self._chat(messages, temperature=temperature, n=n, response_format=response_format,
                          max_tokens=max_tokens, occurrence=occurrence, tags=tags)
        loop = _io_loop()
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _chat(self, messages: list[dict], temperature: float | None = None, n: int = 1,
                    response_format: Any = None, max_tokens: int | None = None,
                    occurrence: int = 0, tags: dict | None = None) -> ChatResult:
        cfg = self.cfg
        messages = _check_messages(messages)
        if not isinstance(n, int) or n < 1:
            raise ExecutorError(f"n must be a positive integer (got {n!r})")
        temperature = cfg.temperature if temperature is None else float(temperature)
        max_tokens = cfg.max_tokens if max_tokens is None else int(max_tokens)
        rf = _normalise_response_format(response_format)
        self._bump(calls=1)

        keys = [sample_key(cfg.model, messages, temperature, max_tokens, rf, cfg.seed,
                           occurrence, j) for j in range(n)]
        hits = self.cache.get_many(keys) if self.cache is not None else {}
        saved = sum(e.cost_usd for e in hits.values())
        self._bump(cache_hits=len(hits), cache_misses=n - len(hits), saved_usd=saved)
        if len(hits) == n:
            self._book(tags, calls=1, cache_hits=n, saved_usd=saved)
            return ChatResult([hits[k].text for k in keys], 0, 0, 0.0, [True] * n)

        est_tokens = sum(len(str(m["content"])) for m in messages) / 4 + min(max_tokens, 512) * n
        async with self._semaphore():
            if self._limiter is not None:
                await self._limiter.acquire(est_tokens)  # also refreshes the run's spend
            # Checked once a slot is free, so at most max_concurrency calls overshoot.
            if cfg.budget_usd is not None and self._run_spent() >= cfg.budget_usd:
                if self._limiter is not None:
                    self._limiter.settle(-est_tokens, 0.0)
                raise BudgetExceeded(f"executor budget of ${cfg.budget_usd:.4f} is spent "
                                     f"(${self._run_spent():.4f})")
            try:
                texts, pt, ct = await self._call(messages, temperature, n, rf, max_tokens,
                                                 derive_seed(cfg.seed, occurrence))
            except ExecutorError:
                self._bump(errors=1)
                self._book(tags, errors=1)
                if self._limiter is not None:
                    self._limiter.settle(-est_tokens, 0.0)
                raise
        cost = self._prices.cost(pt, ct)
        if self._limiter is not None:
            self._limiter.settle(pt + ct - est_tokens, cost)
        self._bump(cost_usd=cost, prompt_tokens=pt, completion_tokens=ct)
        self._book(tags, calls=1, cost_usd=cost, prompt_tokens=pt, completion_tokens=ct,
                   cache_hits=len(hits), saved_usd=saved)
        if self.cache is not None:
            fresh = {k: CacheEntry(texts[j], pt / n, ct / n, cost / n)
                     for j, k in enumerate(keys) if k not in hits}
            self.cache.put_many(cfg.model, fresh)
        out = [hits[k].text if k in hits else texts[j] for j, k in enumerate(keys)]
        return ChatResult(out, pt, ct, cost, [k in hits for k in keys])

    async def _call(self, messages, temperature, n, rf, max_tokens, seed) -> tuple[list[str], int, int]:
        cfg = self.cfg
        cause = "no attempt made"
        attempts = 0
        for attempt in range(cfg.max_retries + 1):
            attempts = attempt + 1
            self._bump(api_calls=1)
            try:
                done = await self.transport.complete(
                    messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed,
                    response_format=rf, timeout_s=cfg.timeout_s)
                return done.texts, done.prompt_tokens, done.completion_tokens
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised as ExecutorError
                cause, retryable, retry_after = classify(exc)
                cause = redact(cause, self._key)
            if not retryable or attempt == cfg.max_retries:
                break
            self._bump(retries=1)
            cap = min(cfg.retry_max_delay_s, cfg.retry_base_delay_s * (2 ** attempt))
            delay = random.uniform(0.0, cap)  # full jitter: spread retries of many callers
            if retry_after is not None:
                delay = max(delay, min(retry_after, cfg.retry_max_delay_s))
            await asyncio.sleep(delay)
        where = cfg.api_base or "the provider's default endpoint"
        if cause in ("connection refused", "connection failed"):
            raise ExecutorUnreachable(f"cannot reach executor at {where}: {cause} "
                                f"(after {attempts} attempts)") from None
        raise ExecutorError(redact(f"executor call to {cfg.model} at {where} failed after "
                                   f"{attempts} attempts: {cause}", self._key)) from None

    # ------------------------------------------------------------------ sync use from threads

    def chat_sync(self, messages: list[dict], **kwargs: Any) -> ChatResult:
        """`chat` from any non-async thread (blocks that thread until the reply)."""
        return asyncio.run_coroutine_threadsafe(self._chat(messages, **kwargs), _io_loop()).result()

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> ExecutorClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the key
        return (f"ExecutorClient(model={self.cfg.model!r}, api_base={self.cfg.api_base!r}, "
                f"transport={self.transport.name!r})")

    def __getstate__(self):  # a client holds sockets and a key: build one per process instead
        raise TypeError("ExecutorClient is not picklable; construct one per worker from the config")

