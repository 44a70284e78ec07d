"""How one chat-completion request reaches the model: litellm, or plain HTTP for OpenAI routes.

`ExecutorClient` owns the policy (cache, budget, rate limit, concurrency bound, retries with
backoff and Retry-After, ledger); a transport only sends ONE attempt and either returns a
`Completion` (texts, prompt tokens, completion tokens, the simulator tag of the server) or
raises. `classify(exc)` turns whatever a transport raised into a `Failure`: a one-line cause,
a kind and a reason, the same for both transports, so the policy above does not care which
one ran. Kinds (docs/EXECUTOR.md "Errors"):

- `transient` (429, 5xx, 408, timeouts, connection errors, malformed bodies): retried;
- `item` (context too long, content filtered, any other 4xx the request itself caused): this
  request fails, the item scores 0, the run goes on;
- `fatal` (401, 402, 403, 404, an exhausted quota, a parameter or provider the endpoint does
  not take): the endpoint cannot serve the run; the client raises `ExecutorFatal`.

- `LitellmTransport`: `litellm.acompletion` (any provider), its own and the OpenAI SDK's
  retries off, only the parameters the provider accepts (`providers.Endpoint.accepted`; an
  unsupported `n` becomes n single requests), `drop_params` as a second line of defence.
  It costs about 5 ms of CPU per call on this box (docs/PERFORMANCE.md).
- `OpenAIHTTPTransport`: `POST {api_base}/chat/completions` in the OpenAI wire format on one
  shared `aiohttp.ClientSession` per event loop (pool sized to `max_concurrency`); a call
  costs a fraction of a millisecond of CPU. It speaks only that protocol: no provider
  translation, no streaming, no tool calls.
- `probe_server(...)`: `GET {api_base}/models` once, to learn whether an OpenAI-compatible
  endpoint is the w4s simulator (which says so) and what it serves (the cache identity).

`choose_transport(...)` resolves `executor.transport: auto` to "http" for OpenAI-compatible
endpoints with an api_base, except OpenAI reasoning models (o1/o3/gpt-5..., per litellm's
map), whose parameters litellm rewrites; everything else goes through litellm. Dollars are
not computed here (the client prices tokens from litellm's map). Nothing here logs, and
causes never carry the request or the key; the client redacts them once more.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from w4s_ray.errors import ConfigError
from w4s_ray.executor import price_map
from w4s_ray.executor.keys import DUMMY_KEY
from w4s_ray.executor.providers import OPENAI_ROUTES, Endpoint, import_litellm

HTTP_PROVIDERS = OPENAI_ROUTES
SIM_HEADER = "X-W4S-Simulator"  # the simulator's self-identification on every reply
TRANSIENT, ITEM, FATAL = "transient", "item", "fatal"


@dataclass(frozen=True)
class Completion:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    simulator: str | None = None  # the X-W4S-Simulator header of the reply, if any
    requests: int = 1  # provider requests it took (n when the provider takes no `n`)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified. `reason` picks the hint the client adds to a fatal
    error: auth, permission, payment, quota, not_found, param, provider, context, content,
    rate, server, timeout, connection, malformed, request, other."""

    cause: str
    kind: str = ITEM
    reason: str = "other"
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind == TRANSIENT


class TransportError(Exception):
    """One failed attempt, already classified: `failure.cause` is one line without secrets."""

    def __init__(self, cause: str, kind: str = ITEM, retry_after: float | None = None,
                 reason: str = "other") -> None:
        super().__init__(cause)
        self.failure = Failure(cause, kind, reason, retry_after)


class Malformed(TransportError):
    """The HTTP exchange worked but the body is not a usable completion (retried)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"malformed response: {detail}", TRANSIENT, reason="malformed")


class Filtered(TransportError):
    """The provider's content filter withheld the reply (finish_reason content_filter)."""

    def __init__(self) -> None:
        super().__init__("content filtered by the provider (finish_reason content_filter)",
                         ITEM, reason="content")


class OneChoice(Exception):
    """The server answered one choice to a request for n (Ollama's /v1 ignores `n`). Not a
    failure: `first` is that reply; the transport now sends one request per sample, so the
    caller asks for the other n - 1 under a rate-limit grant that counts each request."""

    def __init__(self, first: Completion) -> None:
        super().__init__("the server answered one choice for n")
        self.first = first


class PartFailed(Exception):
    """Some requests of a one-sample-per-request fan-out failed and the others were answered.
    `done` maps sample index j to its answered one-sample Completion; `missing` lists the
    indices that failed; `cause` is the first failure. The caller keeps the answers (their
    tokens were spent) and asks again for the missing samples only, each with its own seed."""

    def __init__(self, done: dict[int, Completion], missing: list[int],
                 cause: BaseException) -> None:
        super().__init__(f"{len(missing)} of {len(done) + len(missing)} requests failed: {cause}")
        self.done, self.missing, self.cause = done, missing, cause


async def fan_out(one: Callable[[int], Awaitable[Completion]], n: int) -> Completion:
    """n one-sample requests `one(j)` at once, merged in sample order. All failed: the first
    failure is raised as is. Some failed: `PartFailed` with what was answered."""
    got = await asyncio.gather(*(one(j) for j in range(n)), return_exceptions=True)
    for r in got:  # cancellation and interrupts are never a part's failure
        if isinstance(r, BaseException) and not isinstance(r, Exception):
            raise r
    done = {j: r for j, r in enumerate(got) if isinstance(r, Completion)}
    missing = [j for j in range(n) if j not in done]
    if not missing:
        return merge([done[j] for j in range(n)])
    cause = got[missing[0]]
    if not done:
        raise cause
    raise PartFailed(done, missing, cause)


class Transport(Protocol):
    name: str

    def requests_for(self, n: int) -> int:
        """How many provider requests a call for n samples makes (what a limiter counts)."""
        ...

    async def complete(self, messages: list[dict], *, n: int, temperature: float,
                       max_tokens: int, seed: int, response_format: dict | None,
                       timeout_s: float) -> Completion: ...


# ---------------------------------------------------------------------- shared validation

def validate(choices: Iterable[tuple[int, Any, Any]], n: int, prompt_tokens: Any,
             completion_tokens: Any, has_usage: bool, simulator: str | None = None) -> Completion:
    """The checks every transport applies: n non-empty texts (by choice index) and real usage.

    `choices` are (index, content, finish_reason); a filtered empty reply is `Filtered`."""
    ordered = sorted(choices, key=lambda c: c[0])
    if len(ordered) < n:
        raise Malformed(f"expected {n} choices, got {len(ordered)}")
    texts = []
    for _, content, finish in ordered[:n]:
        if not isinstance(content, str) or not content.strip():
            if finish == "content_filter":
                raise Filtered()
            raise Malformed("empty message content")
        texts.append(content)
    try:
        pt, ct = int(prompt_tokens or 0), int(completion_tokens or 0)
    except (TypeError, ValueError):
        raise Malformed("token usage is not a number") from None
    if not has_usage or (pt == 0 and ct == 0):
        raise Malformed("no token usage in the response")
    return Completion(texts, pt, ct, simulator)


# ---------------------------------------------------------------------- error classification

def one_line(msg: Any, limit: int = 200) -> str:
    return " ".join(str(msg).split())[:limit]


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _headers(exc: BaseException) -> Any:
    for attr in ("litellm_response_headers", "headers"):
        h = getattr(exc, attr, None)
        if h:
            return h
    resp = getattr(exc, "response", None)
    return getattr(resp, "headers", None)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds only; an HTTP date -> None)."""
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers.get("retry-after-ms")) / 1000.0
        if headers.get("retry-after"):
            return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None  # an HTTP-date Retry-After: fall back to our own backoff
    return None


_CONTEXT = ("context_length_exceeded", "maximum context length", "context length",
            "context window", "too many tokens", "prompt is too long", "input is too long",
            "reduce the length", "exceeds the maximum number of tokens")
_CONTENT = ("content_filter", "content_policy", "content management policy", "content filter",
            "responsible ai", "safety system")
_PARAM = ("unsupported parameter", "unrecognized request argument", "does not support parameters",
          "unsupported value", "extra inputs are not permitted", "not supported with this model",
          "unknown parameter", "unexpected keyword argument")
_MODEL_MISSING = ("not found", "does not exist", "unknown model", "invalid model", "no such model",
                  "model_not_found")


def _has(text: str, needles: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(n in low for n in needles)


def status_failure(status: int, message: str, headers: Mapping[str, str] | None = None,
                   code: str = "") -> Failure:
    """The client's policy for an HTTP error status (docs/EXECUTOR.md "Errors")."""
    text = f"{code} {message}"
    if status == 429:
        if _has(text, ("insufficient_quota", "exceeded your current quota", "credit balance")):
            return Failure(f"HTTP 429 quota exhausted ({message})", FATAL, "quota")
        return Failure(f"HTTP 429 rate limited ({message})", TRANSIENT, "rate",
                       retry_after(headers))
    if status >= 500 or status == 408:
        return Failure(f"HTTP {status} ({message})", TRANSIENT, "server", retry_after(headers))
    if status == 401:
        return Failure("HTTP 401 authentication failed (check the API key)", FATAL, "auth")
    if status == 402:
        return Failure(f"HTTP 402 payment required ({message})", FATAL, "payment")
    if status == 403:
        return Failure(f"HTTP 403 permission denied ({message})", FATAL, "permission")
    if status == 404:
        return Failure(f"HTTP 404 model or route not found ({message})", FATAL, "not_found")
    if _has(text, _CONTEXT):
        return Failure(f"context too long: HTTP {status} ({message})", ITEM, "context")
    if _has(text, _CONTENT):
        return Failure(f"content filtered: HTTP {status} ({message})", ITEM, "content")
    if _has(text, _PARAM):
        return Failure(f"parameter rejected: HTTP {status} ({message})", FATAL, "param")
    if "model" in text.lower() and _has(text, _MODEL_MISSING):
        return Failure(f"model not found: HTTP {status} ({message})", FATAL, "not_found")
    return Failure(f"HTTP {status} ({message})", ITEM, "request")


def _litellm_text(exc: BaseException) -> str:
    msg = one_line(exc, 400)
    if " - " in msg:  # litellm prefixes "litellm.X: X: OpenAIException - <server text>"
        msg = msg.split(" - ", 1)[1]
    return msg[:200]


def _litellm_failure(names: list[str], exc: BaseException) -> Failure | None:
    """litellm's own exception classes, where they say more than the status code."""
    msg = _litellm_text(exc)
    if "UnsupportedParamsError" in names:
        text = one_line(exc, 400)
        detail = text.split("UnsupportedParamsError:", 1)[-1].split(". To drop", 1)[0].strip()
        return Failure(f"parameter rejected by the provider ({detail[:200]})", FATAL, "param")
    if "ContextWindowExceededError" in names:
        return Failure(f"context too long ({msg})", ITEM, "context")
    if "ContentPolicyViolationError" in names:
        return Failure(f"content filtered ({msg})", ITEM, "content")
    if "LLM Provider NOT provided" in one_line(exc, 400):
        return Failure("litellm cannot tell which provider serves this model name", FATAL,
                       "provider")
    for name, status in (("AuthenticationError", 401), ("PermissionDeniedError", 403),
                         ("NotFoundError", 404), ("PaymentRequiredError", 402)):
        if name in names:
            return status_failure(status, msg)
    return None


def classify(exc: BaseException) -> Failure:
    """The Failure (cause, kind, reason, Retry-After) of an exception from one attempt."""
    if isinstance(exc, TransportError):
        return exc.failure
    names = [type(e).__name__ for e in _chain(exc)]
    timeouts = ("Timeout", "APITimeoutError", "ReadTimeout", "TimeoutError")
    if "ConnectionRefusedError" in names:
        return Failure("connection refused", TRANSIENT, "connection")
    if any(n in ("ConnectError", "APIConnectionError", "ConnectionError", "ClientConnectorError",
                 "ServerDisconnectedError", "RemoteProtocolError", "gaierror") for n in names) \
            and not any(n in timeouts for n in names):
        text = " ".join(str(e) for e in _chain(exc)).lower()
        if "refused" in text:
            return Failure("connection refused", TRANSIENT, "connection")
        return Failure("connection failed", TRANSIENT, "connection")
    status = getattr(exc, "status_code", None)
    if any(n in timeouts for n in names):
        return Failure("request timed out", TRANSIENT, "timeout")
    known = _litellm_failure(names, exc)
    if known is not None:
        return known
    msg = _litellm_text(exc)
    if msg.startswith(("Expecting", "Unterminated", "Extra data", "Invalid control")) or \
            "JSONDecodeError" in names:
        return Failure(f"malformed response body ({msg})", TRANSIENT, "malformed")
    if "Connection error" in msg:
        return Failure("connection failed", TRANSIENT, "connection")
    if isinstance(status, int):
        return status_failure(status, msg, _headers(exc), str(getattr(exc, "code", "") or ""))
    return Failure(f"{type(exc).__name__}: {msg}", ITEM, "other")


# ---------------------------------------------------------------------- litellm

class LitellmTransport:
    """One attempt through `litellm.acompletion` (any provider; retries off; only the
    parameters the provider accepts)."""

    name = "litellm"

    def __init__(self, endpoint: Endpoint, api_key: str | None) -> None:
        self._litellm = import_litellm()
        self.endpoint = endpoint
        self.model, self.api_base, self._key = endpoint.model, endpoint.api_base, api_key

    def _kwargs(self, messages: list[dict], temperature: float, max_tokens: int, seed: int,
                response_format: dict | None, timeout_s: float) -> dict[str, Any]:
        ok = self.endpoint.accepted
        kwargs: dict[str, Any] = dict(model=self.model, messages=messages, timeout=timeout_s,
                                      num_retries=0, max_retries=0, drop_params=True)
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self._key is not None:
            kwargs["api_key"] = self._key
        for name, value in (("temperature", temperature), ("max_tokens", max_tokens),
                            ("seed", seed), ("response_format", response_format)):
            if name in ok and value is not None:
                kwargs[name] = value
        return kwargs

    async def _one(self, kwargs: dict[str, Any], n: int) -> Completion:
        resp = await self._litellm.acompletion(**kwargs)
        choices = getattr(resp, "choices", None) or []
        usage = getattr(resp, "usage", None)
        headers = (getattr(resp, "_hidden_params", None) or {}).get("additional_headers") or {}
        return validate(
            ((getattr(c, "index", 0) or 0,
              getattr(getattr(c, "message", None), "content", None),
              getattr(c, "finish_reason", None)) for c in choices),
            n, getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0),
            usage is not None, headers.get("llm_provider-" + SIM_HEADER.lower()))

    def requests_for(self, n: int) -> int:
        return 1 if n == 1 or "n" in self.endpoint.accepted else int(n)

    async def complete(self, messages: list[dict], *, n: int, temperature: float,
                       max_tokens: int, seed: int, response_format: dict | None,
                       timeout_s: float) -> Completion:
        kwargs = self._kwargs(messages, temperature, max_tokens, seed, response_format, timeout_s)
        if n == 1 or "n" in self.endpoint.accepted:
            if n > 1:
                kwargs["n"] = n
            return await self._one(kwargs, n)
        # The provider takes one sample per request (Anthropic, Ollama, ...): n requests, each
        # with its own seed where seeds are taken, so the samples differ at T > 0.
        def one(j: int) -> Awaitable[Completion]:
            kw = dict(kwargs)
            if "seed" in kw:
                kw["seed"] = (seed + j) % (2**31)
            return self._one(kw, 1)

        return await fan_out(one, n)


# ---------------------------------------------------------------------- plain HTTP

# One session per (event loop, pool size): a session and its connector belong to the loop
# that created them. The executor's calls all run on the client's one I/O loop, so in
# practice there is one per process; they are closed at interpreter exit.
_SESSIONS: dict[tuple[int, int], tuple[asyncio.AbstractEventLoop, Any]] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(limit: int) -> Any:
    import aiohttp

    loop = asyncio.get_running_loop()
    key = (id(loop), limit)
    with _SESSIONS_LOCK:
        entry = _SESSIONS.get(key)
        if entry is not None and entry[0] is loop and not entry[1].closed:
            return entry[1]
        for k in [k for k, (lp, _) in _SESSIONS.items() if lp.is_closed()]:
            del _SESSIONS[k]  # loops that are gone (short-lived loops calling directly)
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=30)
        # Timeouts are per attempt (asyncio.timeout in `complete`); no env proxies: a local
        # simulator or vLLM must not be routed through a corporate proxy.
        session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(None),
                                        trust_env=False, skip_auto_headers=("User-Agent",))
        _SESSIONS[key] = (loop, session)
        return session


def _close_sessions() -> None:
    with _SESSIONS_LOCK:
        entries = list(_SESSIONS.values())
        _SESSIONS.clear()
    for loop, session in entries:
        if loop.is_closed() or session.closed:
            continue
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=2)
            except Exception:  # noqa: BLE001 - best effort at exit; the process is ending
                pass


atexit.register(_close_sessions)


def _client_error(exc: Exception) -> TransportError:
    """An aiohttp error (no HTTP status) as a classified TransportError."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError) or \
            "refused" in str(exc).lower()
        return TransportError("connection refused" if refused else "connection failed",
                              TRANSIENT, reason="connection")
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                        aiohttp.ClientOSError)):
        return TransportError("connection failed", TRANSIENT, reason="connection")
    return TransportError(f"{type(exc).__name__}: {one_line(exc)}", ITEM)


def _error_message(body: bytes) -> tuple[str, str]:
    """(the server's error text, its error code): `{"error": {"message": ..., "code": ...}}`,
    `{"error": "..."}`, `{"detail": ...}`, or the raw body."""
    try:
        data = json.loads(body)
    except ValueError:
        return one_line(body.decode("utf-8", "replace")) or "empty body", ""
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict) and err.get("message"):
            code = " ".join(str(err.get(k) or "") for k in ("code", "type")).strip()
            return one_line(err["message"]), code
        return one_line(err), ""
    return one_line(data), ""


class OpenAIHTTPTransport:
    """One attempt as `POST {api_base}/chat/completions` on a shared aiohttp session."""

    name = "http"

    def __init__(self, model: str, api_base: str | None, api_key: str | None,
                 pool_size: int) -> None:
        if not api_base:
            raise ConfigError("executor.transport=http needs executor.api_base "
                              "(the OpenAI-compatible server's URL, e.g. http://127.0.0.1:8765/v1)")
        self.model = wire_model(model)
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.pool_size = max(1, int(pool_size))
        self._headers = {"Content-Type": "application/json"}
        if api_key and api_key != DUMMY_KEY:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.one_choice = False  # learnt: the server returns one choice whatever n asks

    async def _post(self, body: dict[str, Any], timeout_s: float) -> tuple[bytes, Any]:
        """One POST; (raw body, headers) of a 200, else a classified TransportError."""
        import aiohttp

        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            async with asyncio.timeout(timeout_s):
                async with _session(self.pool_size).post(self.url, data=data,
                                                         headers=self._headers) as resp:
                    raw = await resp.read()
                    status, headers = resp.status, resp.headers
        except TimeoutError:
            raise TransportError("request timed out", TRANSIENT, reason="timeout") from None
        except aiohttp.ClientError as exc:
            raise _client_error(exc) from None
        if status != 200:
            message, code = _error_message(raw)
            f = status_failure(status, message, headers, code)
            raise TransportError(f.cause, f.kind, f.retry_after, f.reason)
        return raw, headers

    async def complete(self, messages: list[dict], *, n: int, temperature: float,
                       max_tokens: int, seed: int, response_format: dict | None,
                       timeout_s: float) -> Completion:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "n": n,
                                "temperature": temperature, "max_tokens": max_tokens,
                                "seed": seed}
        if response_format is not None:
            body["response_format"] = response_format
        if n > 1 and self.one_choice:
            return await self._one_by_one(body, n, timeout_s)
        raw, headers = await self._post(body, timeout_s)
        try:
            return parse_openai_body(raw, n, headers.get(SIM_HEADER))
        except Malformed:
            if n == 1:
                raise
            first = parse_openai_body(raw, 1, headers.get(SIM_HEADER))  # Malformed again: raise
        # One choice for n: from now on one request per sample, each with its own seed so
        # samples at T > 0 differ. The rest of this call is the caller's to ask for: the grant
        # it holds counted one request, not n.
        self.one_choice = True
        raise OneChoice(first)

    def requests_for(self, n: int) -> int:
        return int(n) if n > 1 and self.one_choice else 1

    async def _one_by_one(self, body: dict[str, Any], n: int, timeout_s: float) -> Completion:
        async def one(j: int) -> Completion:
            b = dict(body, n=1, seed=(body["seed"] + j) % (2**31))
            raw, headers = await self._post(b, timeout_s)
            return parse_openai_body(raw, 1, headers.get(SIM_HEADER))

        return await fan_out(one, n)


def merge(parts: list[Completion]) -> Completion:
    """Several one-request completions (one sample each, or a first part and the rest) as one."""
    return Completion([t for d in parts for t in d.texts], sum(d.prompt_tokens for d in parts),
                      sum(d.completion_tokens for d in parts), parts[0].simulator,
                      sum(d.requests for d in parts))


def parse_openai_body(raw: bytes, n: int, simulator: str | None = None) -> Completion:
    """An OpenAI chat.completion body -> Completion, or `Malformed` naming what is wrong."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise TransportError(f"malformed response body ({one_line(exc)})", TRANSIENT,
                             reason="malformed") from None
    if not isinstance(data, dict):
        raise Malformed(f"body is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list):
        choices = []
    pairs = []
    for i, ch in enumerate(choices):
        msg = ch.get("message") if isinstance(ch, dict) else None
        index = ch.get("index", i) if isinstance(ch, dict) else i
        pairs.append((index if isinstance(index, int) else i,
                      msg.get("content") if isinstance(msg, dict) else None,
                      ch.get("finish_reason") if isinstance(ch, dict) else None))
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else None
    return validate(pairs, n, (usage or {}).get("prompt_tokens"),
                    (usage or {}).get("completion_tokens"), usage is not None, simulator)


# ---------------------------------------------------------------------- selection

def wire_model(model: str) -> str:
    """The model name an OpenAI-compatible server expects: litellm's route prefix removed."""
    for prefix in HTTP_PROVIDERS:
        if model.startswith(prefix + "/"):
            return model[len(prefix) + 1:]
    return model


def choose_transport(transport: str, endpoint: Endpoint, lazy: bool = False) -> str:
    """'http' or 'litellm' for `executor.transport` (auto: http only for OpenAI-compatible
    endpoints with an api_base, except OpenAI reasoning models). `lazy`: read the reasoning
    flag from litellm's bundled map without importing litellm where that is certain
    (`price_map.supports_reasoning`)."""
    if transport in ("http", "litellm"):
        return transport
    if transport != "auto":
        raise ConfigError(f"executor.transport {transport!r}: expected auto, litellm or http")
    if not endpoint.openai_compatible or not endpoint.api_base:
        return "litellm"
    if endpoint.provider == "openai" and _openai_reasoning_model(endpoint.wire_model, lazy):
        return "litellm"  # litellm rewrites their parameters (max_completion_tokens, ...)
    return "http"


def _openai_reasoning_model(model: str, lazy: bool = False) -> bool:
    known = price_map.supports_reasoning(model) if lazy else None
    if known is not None:
        return known
    litellm = import_litellm()
    try:
        return bool(litellm.supports_reasoning(model=model))
    except Exception:  # noqa: BLE001 - a name not in litellm's map: a plain chat model
        return False


def make_transport(cfg: Any, endpoint: Endpoint,
                   api_key: str | None) -> LitellmTransport | OpenAIHTTPTransport:
    """The transport `cfg` (an ExecutorConfig) asks for, to `endpoint`."""
    lazy = getattr(cfg, "lazy_litellm", False)
    if choose_transport(cfg.transport, endpoint, lazy) == "http":
        return OpenAIHTTPTransport(endpoint.model, endpoint.api_base, api_key,
                                   cfg.max_concurrency)
    return LitellmTransport(endpoint, api_key)


# ---------------------------------------------------------------------- server identity

@dataclass(frozen=True)
class ServerInfo:
    """What `GET {api_base}/models` says about an OpenAI-compatible server."""

    simulator: str | None       # "w4s-sim/<version>" when the server is the w4s simulator
    models: dict[str, str] | None  # served id -> "owned_by root" (None: no usable listing)

    def fingerprint(self, wire_model: str) -> str:
        """The part of the cache identity that tells servers at one URL apart."""
        if self.simulator:
            return self.simulator
        if self.models is None:
            return "openai-compatible"
        return "openai-compatible:" + self.models.get(wire_model, "unlisted")


async def probe_server(api_base: str, api_key: str | None, timeout_s: float) -> ServerInfo:
    """`GET {api_base}/models`. Connection failures raise TransportError (transient); any
    other answer (404, HTML, no JSON) is a server that does not list its models."""
    import aiohttp

    headers = {}
    if api_key and api_key != DUMMY_KEY:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        async with asyncio.timeout(timeout_s):
            async with _session(4).get(api_base.rstrip("/") + "/models",
                                       headers=headers) as resp:
                raw = await resp.read()
                status, sim = resp.status, resp.headers.get(SIM_HEADER)
    except TimeoutError:
        raise TransportError("request timed out", TRANSIENT, reason="timeout") from None
    except aiohttp.ClientError as exc:
        raise _client_error(exc) from None
    models = None
    if status == 200:
        try:
            data = json.loads(raw).get("data")
            models = {str(m["id"]): f"{m.get('owned_by', '')} {m.get('root', '')}".strip()
                      for m in data if isinstance(m, dict) and "id" in m}
        except (ValueError, AttributeError, TypeError):
            models = None
    if sim is None and models and all(v.startswith("w4s-sim") for v in models.values()):
        sim = "w4s-sim"  # an older simulator without the header
    return ServerInfo(sim, models)
