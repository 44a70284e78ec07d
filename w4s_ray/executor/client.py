"""`ExecutorClient`: every call to the strong model goes through here.

One call = cache lookup per sample -> bounded concurrency -> rate-limit grant -> budget check
-> one attempt through the transport (`executor/transport.py`: plain HTTP for OpenAI-compatible
routes with an api_base, else `litellm.acompletion`) with our retry policy -> validation ->
cost from litellm's price map -> cache write -> ledger. Everything but the single attempt is
shared by both transports. litellm's own retries are off (`num_retries=0`, and the OpenAI
SDK's `max_retries=0`): its retry wrapper neither honours Retry-After with jitter nor reports
one clear cause, so the policy lives here: exponential backoff with full jitter, at least the
server's Retry-After, at most `retry_max_delay_s` per wait and `max_retries` retries.
Every attempt (retries too: the provider counts each) takes its own rate-limit grant for the
provider requests it makes (n for an endpoint that takes one sample per request), reserving
their prompts' token bound plus n x max_tokens (or, with `rate_limit_tokens=used`, the
completion tokens the limiter's recent replies suggest; `ratelimit.Ask`), settled to what the
provider counted.
A call that still fails raises `ExecutorError` naming the cause; a reply is never "".
Failures the endpoint will repeat for every call (bad key, unknown model, rejected parameter,
nothing listening: `transport.classify` kind "fatal") raise `ExecutorFatal` with a hint
(`failures.py`), and every later call of this client fails at once with the same line.

Endpoint identity: `providers.resolve_endpoint` fixes provider, URL, key variable and the
parameters sent; for an OpenAI-compatible URL the server is asked once (`GET /models`) what
it is, so the simulator is told apart from a real server. The identity keys the cache
(`cache.py`); a reply whose simulator header contradicts it stops the run (the server behind
the URL changed). A real model name sent to the simulator is refused with a hint.
`preflight()` makes one cheap uncached call before a run spends anything else.

`max_tokens` above `executor.max_tokens_cap` is lowered to the cap before anything else (cache
key included), never refused; `stats()["capped"]` and the ledger count such calls.

Cost and tokens in a `ChatResult` are what this call paid; samples served from the cache cost
nothing, and what they cost when first fetched is `cached_usd` (the would-have-cost; `saved_usd`
in `stats()`). The budget (`budget_usd`) is checked before
each paid call, against this client's spend plus, with a shared rate limiter, the run's spend
reported by every worker; calls already in flight finish. Fully cached calls stay allowed
after the budget is spent, since they are free.

All calls run on one background event loop per process (`_io_loop`); `chat` can be awaited
from any loop and `chat_sync` called from any thread.

Not done here: streaming, tool calls, per-call model overrides (the model is the config's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from w4s_ray.config import ExecutorConfig
from w4s_ray.errors import BudgetExceeded, ExecutorError, ExecutorFatal
from w4s_ray.executor import price_map
from w4s_ray.executor.cache import CacheEntry, CompletionCache, sample_key
from w4s_ray.executor.cost import Pricing, cost_usd, resolve_pricing
from w4s_ray.executor.failures import call_error, fatal_error
from w4s_ray.executor.keys import is_local, redact, resolve_api_key
from w4s_ray.executor.providers import import_litellm, resolve_endpoint
from w4s_ray.executor.ratelimit import Ask, AsyncRateLimiter, per_window, token_upper_bound
from w4s_ray.executor.transport import (
    FATAL,
    ITEM,
    Failure,
    OneChoice,
    PartFailed,
    ServerInfo,
    TransportError,
    classify,
    make_transport,
    merge,
    probe_server,
)
from w4s_ray.utils.held import held


@dataclass
class ChatResult:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: list[bool] = field(default_factory=list)
    cached_usd: float = 0.0  # what the cached samples cost when they were first fetched
    capped: bool = False  # max_tokens was lowered to executor.max_tokens_cap


class _Failed(Exception):
    """Internal: every attempt of a call failed; the last classified failure."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(failure.cause)
        self.failure, self.attempts = failure, attempts


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
    """Dollars for (prompt, completion) tokens, cheaply: fixed rates of a `Pricing` (free or
    per-token prices from the config) as they are, litellm's price map otherwise.

    `litellm.cost_per_token` costs ~0.3 ms of CPU per call here (more than a whole HTTP
    exchange). When the entry's price is linear in tokens (checked against litellm at points
    up to 1M tokens, so tiered "above 128k" prices are caught) the two per-token rates are
    read once; otherwise every call asks litellm.
    """

    _PROBES = ((1, 1), (977, 313), (150_000, 40_000), (1_000_000, 250_000))

    def __init__(self, pricing: Pricing, lazy: bool = False) -> None:
        self.price_model = pricing.label
        if pricing.rates is not None:
            self._rates: tuple[float, float] | None = pricing.rates
            return
        price_model = self.price_model = str(pricing.map_entry)
        # lazy (executor.lazy_litellm): an entry the bundled map shows to be two per-token
        # rates needs no litellm (price_map.linear_rates; checked against litellm per entry).
        self._rates = price_map.linear_rates(price_model) if lazy else None
        if self._rates is not None:
            return
        litellm = import_litellm()
        rate_in, _ = litellm.cost_per_token(model=price_model, prompt_tokens=1,
                                            completion_tokens=0)
        _, rate_out = litellm.cost_per_token(model=price_model, prompt_tokens=0,
                                             completion_tokens=1)
        self._rates = (float(rate_in), float(rate_out))
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
        if not cfg.lazy_litellm:
            import_litellm()  # litellm prices every call, whichever transport
        # lazy: imported only by what needs it (the litellm transport, a provider litellm
        # must place, a price that is not two per-token rates); see executor.price_map.
        self.cfg = cfg
        self.endpoint = resolve_endpoint(cfg)
        self.pricing = resolve_pricing(self.endpoint.model, cfg.pricing_model,
                                       cfg.price_per_mtok_in, cfg.price_per_mtok_out,
                                       lazy=cfg.lazy_litellm)
        self.price_model = self.pricing.label
        self._prices = _Prices(self.pricing, lazy=cfg.lazy_litellm)
        self._key = resolve_api_key(cfg, self.endpoint)
        self.transport = make_transport(cfg, self.endpoint, self._key)
        self.server: ServerInfo | None = None  # what the server said it is (OpenAI routes)
        self._identity: str | None = None
        self._identity_lock: asyncio.Lock | None = None
        self._fatal: ExecutorFatal | None = None
        self._answered = 0  # calls answered by the endpoint (cache hits not counted)
        self._rejected = 0  # calls failed in a row (per-item rejections, exhausted retries)
        self.cache = CompletionCache(cfg.cache.path) if cfg.cache.enabled else None
        if rate_limiter is not None:
            # Injected by the caller: e.g. `runtime.rate_limiter.SharedRateLimiter` over the run's
            # limiter actor. Anything with `acquire(tokens) -> grant`, `settle(grant, tokens,
            # cost_usd)`, `release(grant)` and (optionally) `run_spent(local_usd)` will do; this
            # module knows no Ray.
            self._limiter: Any = rate_limiter
        elif cfg.requests_per_minute or cfg.tokens_per_minute:
            self._limiter = AsyncRateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute,
                                             cfg.rate_limit_window_s, cfg.rate_limit_guard_s)
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
                "prompt_tokens", "completion_tokens", "errors", "retries", "capped")
        out = {k: s.get(k, 0) for k in keys}
        for k in ("calls", "api_calls", "cache_hits", "cache_misses", "prompt_tokens",
                  "completion_tokens", "errors", "retries", "capped"):
            out[k] = int(out[k])
        out["tokens"] = out["prompt_tokens"] + out["completion_tokens"]
        out["budget_usd"] = self.cfg.budget_usd
        out["max_tokens_cap"] = self.cfg.max_tokens_cap
        out["run_spent_usd"] = self._run_spent()
        return out

    def _run_spent(self) -> float:
        if self._limiter is not None and hasattr(self._limiter, "run_spent"):
            return self._limiter.run_spent(self.spent_usd())
        return self.spent_usd()

    # ------------------------------------------------------------------ endpoint identity

    @property
    def simulated(self) -> bool | None:
        """True when the endpoint is the w4s simulator (None: not asked yet)."""
        if self.server is not None:
            return self.server.simulator is not None
        return None if self._identity is None else False

    def _make_identity(self, server: ServerInfo | None) -> str:
        ep = self.endpoint
        return json.dumps({"provider": ep.provider, "api_base": ep.api_base or "default",
                           "model": ep.wire_model if ep.openai_compatible else ep.model,
                           "server": server.fingerprint(ep.wire_model) if server else "-",
                           "params": sorted(ep.accepted)}, sort_keys=True)

    async def _ensure_identity(self) -> str | None:
        """The cache identity; None while an OpenAI-compatible server cannot be asked yet
        (then nothing is read from or written to the cache)."""
        if self._identity is not None:
            return self._identity
        ep = self.endpoint
        if not (ep.openai_compatible and ep.api_base):
            self._identity = self._make_identity(None)
            return self._identity
        if self._identity_lock is None:  # created on the I/O loop, the only loop using it
            self._identity_lock = asyncio.Lock()
        async with self._identity_lock:
            if self._identity is None:
                try:
                    info = await probe_server(ep.api_base, self._key, min(self.cfg.timeout_s, 15))
                except TransportError:
                    return None  # the call itself will report why (after its retries)
                self._refuse_real_model_at_simulator(info)
                self.server = info
                self._identity = self._make_identity(info)
        return self._identity

    def _refuse_real_model_at_simulator(self, info: ServerInfo) -> None:
        ep = self.endpoint
        if info.simulator and info.models is not None and ep.wire_model not in info.models:
            names = ", ".join(sorted(info.models))
            err = ExecutorFatal(
                f"executor.api_base {ep.api_base} is the w4s simulator ({info.simulator}), which "
                f"serves only simulated models ({names}), not {ep.wire_model}: for the real "
                f"model --set executor.api_base=null (its provider's endpoint); to simulate it "
                f"--set executor.model=openai/sim-{ep.wire_model.rsplit('/', 1)[-1]}")
            self._fatal = err
            raise err

    def _check_server_tag(self, tag: str | None) -> None:
        """A reply must come from the server the identity describes (not a swapped one). A
        missing tag only counts on the HTTP transport, which reads the headers itself."""
        if self.server is None or tag == self.server.simulator:
            return
        if tag is None and self.transport.name != "http":
            return
        now = f"the w4s simulator ({tag})" if tag else "a server that is not the simulator"
        self._fatal = fatal_error(f"the server behind the URL changed during the run (it now "
                                  f"answers as {now})", "preflight", self.endpoint, self.cfg)
        raise self._fatal

    # ------------------------------------------------------------------ the call

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:  # created on the I/O loop, the only loop that uses it
            self._sem = asyncio.Semaphore(self.cfg.max_concurrency)
        return self._sem

    @contextlib.asynccontextmanager
    async def _slot(self):
        """One of `max_concurrency` slots; the wait for it is the platform's (utils/held.py)."""
        sem = self._semaphore()
        with held():
            await sem.acquire()
        try:
            yield
        finally:
            sem.release()

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
        if self._fatal is not None:  # the endpoint cannot serve this run: fail at once
            raise type(self._fatal)(*self._fatal.args)
        messages = _check_messages(messages)
        if not isinstance(n, int) or n < 1:
            raise ExecutorError(f"n must be a positive integer (got {n!r})")
        temperature = cfg.temperature if temperature is None else float(temperature)
        max_tokens = cfg.max_tokens if max_tokens is None else int(max_tokens)
        if max_tokens < 1:
            raise ExecutorError(f"max_tokens must be a positive integer (got {max_tokens})")
        capped = cfg.max_tokens_cap is not None and max_tokens > cfg.max_tokens_cap
        if capped:  # sent (and cached) as the cap: the request the endpoint really got
            max_tokens = int(cfg.max_tokens_cap)
        rf = _normalise_response_format(response_format)
        self._bump(calls=1, capped=int(capped))
        if capped:
            self._book(tags, capped=1)

        identity = await self._ensure_identity()
        keys = [sample_key(identity, messages, temperature, max_tokens, rf, cfg.seed,
                           occurrence, j) for j in range(n)] if identity is not None else []
        hits = self.cache.get_many(keys) if self.cache is not None and keys else {}
        saved = sum(e.cost_usd for e in hits.values())
        self._bump(cache_hits=len(hits), cache_misses=n - len(hits), saved_usd=saved)
        if keys and len(hits) == n:
            self._book(tags, calls=1, cache_hits=n, saved_usd=saved)
            return ChatResult([hits[k].text for k in keys], 0, 0, 0.0, [True] * n, saved,
                              capped)

        async with self._slot():
            # The first attempt's grant is taken before the budget check: it also refreshes
            # the run's spend. Checked once a slot is free, so at most max_concurrency calls
            # overshoot.
            # (For a fan-out wider than a window: the first part's grant; `_call` splits it.)
            grant = await self._acquire(messages, self._fanout_chunk(n), max_tokens)
            if cfg.budget_usd is not None and self._run_spent() >= cfg.budget_usd:
                self._release(grant)
                raise BudgetExceeded(f"executor budget of ${cfg.budget_usd:.4f} is spent "
                                     f"(${self._run_spent():.4f})")
            try:
                done = await self._call(messages, temperature, n, rf, max_tokens,
                                        derive_seed(cfg.seed, occurrence), grant=grant)
                self._check_server_tag(done.simulator)
            except (_Failed, ExecutorError) as exc:
                self._bump(errors=1)
                self._book(tags, errors=1)
                if isinstance(exc, ExecutorError):
                    raise
                err = await self._escalate(exc.failure, max_tokens, call_error(
                    exc.failure, self.endpoint, cfg, exc.attempts))
                if isinstance(err, ExecutorFatal):
                    self._fatal = err
                raise err from None
        self._answered += 1
        self._rejected = 0
        texts, pt, ct = done.texts, done.prompt_tokens, done.completion_tokens
        cost = self._prices.cost(pt, ct)
        self._bump(cost_usd=cost, prompt_tokens=pt, completion_tokens=ct)
        self._book(tags, calls=1, cost_usd=cost, prompt_tokens=pt, completion_tokens=ct,
                   cache_hits=len(hits), saved_usd=saved)
        if self.cache is not None and keys:
            fresh = {k: CacheEntry(texts[j], pt / n, ct / n, cost / n)
                     for j, k in enumerate(keys) if k not in hits}
            self.cache.put_many(self.endpoint.model, fresh, identity or "")
        if not keys:
            return ChatResult(list(texts), pt, ct, cost, [False] * n, 0.0, capped)
        out = [hits[k].text if k in hits else texts[j] for j, k in enumerate(keys)]
        return ChatResult(out, pt, ct, cost, [k in hits for k in keys], saved, capped)

    async def _escalate(self, failure: Failure, max_tokens: int,
                        err: ExecutorError) -> ExecutorError:
        """A failed call becomes fatal when the last `executor.reject_limit` calls all failed
        (rejected per item, or a transient failure that outlasted every retry) AND a trivial
        request with the same max_tokens (at most the agent API's default, 4096) fails too:
        then no workflow can be served — from the start (e.g. max_tokens beyond the model's
        context) or since mid-run (an outage that outlasts the retries), and going on would
        score every item 0 in silence. Workflow code cannot stop a run this way: its own odd
        requests fail, the trivial one is answered and the count starts again."""
        if isinstance(err, ExecutorFatal):
            return err
        self._rejected += 1
        if self._rejected < self.cfg.reject_limit:
            return err
        failed, self._rejected = self._rejected, 0
        probe = [{"role": "user", "content": "Reply with the single word OK."}]
        try:
            done = await self._call(probe, self.cfg.temperature, 1, None,
                                    min(max_tokens, 4096), derive_seed(self.cfg.seed, 0))
        except _Failed as exc:
            if exc.failure.kind == FATAL:
                return call_error(exc.failure, self.endpoint, self.cfg, exc.attempts)
            what = ("rejected every call of this run" if not self._answered and
                    failure.kind == ITEM else f"failed the last {failed} calls in a row")
            return fatal_error(
                f"the endpoint {what}, a minimal one with max_tokens={min(max_tokens, 4096)} "
                f"too ({exc.failure.cause})",
                "rejected" if exc.failure.kind == ITEM else "unavailable", self.endpoint,
                self.cfg)
        self._answered += 1  # it serves trivial requests: the failures were the requests'
        self._bump(cost_usd=self._prices.cost(done.prompt_tokens, done.completion_tokens))
        return err

    # ------------------------------------------------------------------ the rate limit

    async def _acquire(self, messages: list[dict], n: int, max_tokens: int) -> Any:
        """A grant for ONE attempt (the provider counts each), None without a limiter. It
        counts the provider requests the attempt makes (n where the endpoint takes one sample
        per request: `transport.requests_for`), each with the prompt's upper bound. With
        `executor.rate_limit_tokens=requested` it reserves what the provider counts when the
        call arrives: those prompts plus n x max_tokens. With `used`, those prompts plus the
        completion tokens the replies it has settled suggest (the full max_tokens until a few
        were seen), sized when it grants."""
        if self._limiter is None:
            return None
        ask = Ask(token_upper_bound(messages, 0, 0), n, max_tokens,
                  requests=self.transport.requests_for(n),
                  estimated=self.cfg.rate_limit_tokens != "requested")
        with held():  # the platform's wait, not the workflow's (utils/held.py)
            return await self._limiter.acquire(ask)

    def _settle(self, grant: Any, done: Any, n: int, max_tokens: int) -> None:
        """After an attempt: the tokens the provider counted for it, and its dollars (a failed
        attempt keeps its whole reservation: what the provider charged for it is not known).
        Counted: the reply's prompt tokens plus n x max_tokens (`requested`) or plus the
        completion tokens it reports (`used`)."""
        if self._limiter is None:
            return
        if done is None:
            self._limiter.settle(grant, None, 0.0)
            return
        completion = (int(n) * int(max_tokens) if self.cfg.rate_limit_tokens == "requested"
                      else done.completion_tokens)
        self._limiter.settle(grant, done.prompt_tokens + completion,
                             self._prices.cost(done.prompt_tokens, done.completion_tokens),
                             completion=(done.completion_tokens, max(1, len(done.texts))),
                             requests=done.requests)

    def _settle_part(self, grant: Any, part: PartFailed, max_tokens: int) -> None:
        """A fan-out whose requests were all sent and only some answered: every request is
        counted, the failed ones as what a provider counting them would have charged (their
        prompt and, under `requested`, max_tokens), the dollars of the answered ones only."""
        if self._limiter is None:
            return
        answered = merge([part.done[j] for j in sorted(part.done)])
        k, failed = len(part.done), len(part.missing)
        per_prompt = answered.prompt_tokens / k
        completion = ((k + failed) * int(max_tokens) if self.cfg.rate_limit_tokens == "requested"
                      else answered.completion_tokens)
        self._limiter.settle(grant, answered.prompt_tokens + failed * per_prompt + completion,
                             self._prices.cost(answered.prompt_tokens, answered.completion_tokens),
                             completion=(answered.completion_tokens, k), requests=k + failed)

    def _release(self, grant: Any) -> None:
        """A grant that was never used: nothing was sent."""
        if self._limiter is not None:
            self._limiter.release(grant)

    def _fanout_chunk(self, n: int) -> int:
        """Samples one attempt may ask for: n, or fewer where the endpoint takes one sample
        per request and n requests exceed what one window of `requests_per_minute` allows."""
        if self._limiter is None or not self.cfg.requests_per_minute:
            return n
        if self.transport.requests_for(n) <= 1:  # the endpoint takes `n`: one request
            return n
        window = per_window(self.cfg.requests_per_minute, self.cfg.rate_limit_window_s)
        return max(1, min(n, int(window + 1e-9)))

    async def _call(self, messages, temperature, n, rf, max_tokens, seed,
                    local_refused_is_final: bool = False, grant: Any = None):
        """One request with the retry policy: the transport's Completion, or `_Failed`.

        Every attempt holds its own rate-limit grant (`grant`: the first one, already taken).
        `local_refused_is_final`: a refused connection to a local URL is not retried (the
        preflight: nothing listens on this machine's port, and waiting will not start it)."""
        cfg = self.cfg
        chunk = self._fanout_chunk(n)
        if chunk < n:
            # More provider requests than one window of the RPM limit holds: sent a window's
            # worth at a time, each part under its own grant, with the seeds the requests would
            # have had in one fan-out (sample j keeps seed + j). Sent at once, the provider
            # would answer part of them 429 and every retry would send them all again.
            # A grant already taken (`chat`) was sized for the first part.
            parts = []
            for start in range(0, n, chunk):
                parts.append(await self._call(messages, temperature, min(chunk, n - start), rf,
                                              max_tokens, (seed + start) % (2**31),
                                              local_refused_is_final, grant=grant))
                grant = None
            return merge(parts)
        failure = Failure("no attempt made")
        attempts = 0
        for attempt in range(cfg.max_retries + 1):
            attempts = attempt + 1
            self._bump(api_calls=1)
            if grant is None:
                grant = await self._acquire(messages, n, max_tokens)
            try:
                done = await self.transport.complete(
                    messages, n=n, temperature=temperature, max_tokens=max_tokens, seed=seed,
                    response_format=rf, timeout_s=cfg.timeout_s)
            except (asyncio.CancelledError, KeyboardInterrupt):
                self._settle(grant, None, n, max_tokens)
                raise
            except OneChoice as one:
                # The server answered one of n samples and takes no `n`: that request is
                # settled, the other n - 1 go out one per request under a grant counting each.
                self._settle(grant, one.first, 1, max_tokens)
                rest = await self._call(messages, temperature, n - 1, rf, max_tokens,
                                        (seed + 1) % (2**31), local_refused_is_final)
                return merge([one.first, rest])
            except PartFailed as part:
                # One-sample requests of a fan-out: the answered ones are kept (their tokens
                # were spent), the failed ones are asked again, each with its own seed.
                self._settle_part(grant, part, max_tokens)
                got = dict(part.done)
                for j in part.missing:
                    got[j] = await self._call(messages, temperature, 1, rf, max_tokens,
                                              (seed + j) % (2**31), local_refused_is_final)
                return merge([got[j] for j in range(n)])
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised as ExecutorError
                self._settle(grant, None, n, max_tokens)
                f = classify(exc)
                failure = Failure(redact(f.cause, self._key), f.kind, f.reason, f.retry_after)
            else:
                self._settle(grant, done, n, max_tokens)
                return done
            grant = None
            if not failure.retryable or attempt == cfg.max_retries:
                break
            if local_refused_is_final and failure.cause == "connection refused" \
                    and is_local(self.endpoint.api_base):
                break
            self._bump(retries=1)
            cap = min(cfg.retry_max_delay_s, cfg.retry_base_delay_s * (2 ** attempt))
            delay = random.uniform(0.0, cap)  # full jitter: spread retries of many callers
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, cfg.retry_max_delay_s))
            await asyncio.sleep(delay)
        raise _Failed(failure, attempts)

    # ------------------------------------------------------------------ preflight

    async def preflight(self) -> dict:
        """One cheap, uncached call before a run spends anything else (docs/EXECUTOR.md).

        Raises `ExecutorFatal` when the endpoint cannot serve the run: any fatal failure, and
        also a rejected or unanswered minimal request, which no workflow call would fare
        better with. An empty reply (a reasoning model spending the few tokens on thought)
        passes: the key, the model and the parameters were accepted."""
        coro = self._preflight()
        loop = _io_loop()
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _preflight(self) -> dict:
        cfg = self.cfg
        if self._fatal is not None:
            raise type(self._fatal)(*self._fatal.args)
        await self._ensure_identity()
        messages = [{"role": "user", "content": "Reply with the single word OK."}]
        try:
            done = await self._call(messages, cfg.temperature, 1, None, min(16, cfg.max_tokens),
                                    derive_seed(cfg.seed, 0), local_refused_is_final=True)
            self._check_server_tag(done.simulator)
            self._bump(cost_usd=self._prices.cost(done.prompt_tokens, done.completion_tokens))
        except _Failed as exc:
            f = exc.failure
            if f.reason != "malformed":
                err = call_error(f, self.endpoint, cfg, exc.attempts)
                if not isinstance(err, ExecutorFatal):  # our own minimal request failed
                    err = fatal_error(f"preflight call failed after {exc.attempts} attempts: "
                                      f"{f.cause}", "preflight", self.endpoint, cfg)
                self._fatal = err
                raise err from None
        await self._ensure_identity()  # a server that was still starting has answered now
        return self.describe()

    def describe(self) -> dict:
        """What a run records about its executor (reports say "simulated" from this)."""
        ep = self.endpoint
        return {"model": self.cfg.model, "provider": ep.provider, "endpoint": ep.where,
                "transport": self.transport.name, "price_model": self.price_model,
                "simulated": bool(self.simulated),
                "simulator": self.server.simulator if self.server else None,
                "dropped_params": ep.dropped, "max_tokens_cap": self.cfg.max_tokens_cap}

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

