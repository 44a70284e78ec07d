"""How one chat-completion request reaches the model: litellm, or plain HTTP for OpenAI routes.

`ExecutorClient` owns the policy (cache, budget, rate limit, concurrency bound, retries with
backoff and Retry-After, ledger); a transport only sends ONE attempt and either returns a
`Completion` (texts, prompt tokens, completion tokens) or raises. `classify(exc)` turns
whatever a transport raised into (one-line cause, retryable?, Retry-After seconds), the same
kinds for both transports, so the retry policy above does not care which one ran.

- `LitellmTransport`: `litellm.acompletion` (any provider litellm supports), its own and the
  OpenAI SDK's retries off. It costs about 5 ms of CPU per call on this box (request
  transforms, its logging path's duplicate cost calculation), see docs/PERFORMANCE.md.
- `OpenAIHTTPTransport`: `POST {api_base}/chat/completions` in the OpenAI wire format on one
  shared `aiohttp.ClientSession` per event loop (pool sized to `max_concurrency`); a call
  costs a fraction of a millisecond of CPU. It speaks only that protocol: no provider
  translation, no streaming, no tool calls.

`select_transport(...)` resolves `executor.transport: auto` to "http" when the model is an
OpenAI-compatible route (`openai/...`, or litellm's provider lookup says openai/hosted_vllm)
AND `api_base` is set, except OpenAI reasoning models (o1/o3/gpt-5..., per litellm's map),
whose parameters litellm rewrites; everything else goes through litellm. Dollars are not computed here
(the client prices tokens from litellm's map). Nothing here logs, and causes never carry the
request or the key; the client redacts them once more before they reach an exception.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from w4s_ray.errors import ConfigError
from w4s_ray.executor.keys import DUMMY_KEY

HTTP_PROVIDERS = ("openai", "hosted_vllm")


@dataclass(frozen=True)
class Completion:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int


class TransportError(Exception):
    """One failed attempt, already classified: `cause` is one line without secrets."""

    def __init__(self, cause: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause, self.retryable, self.retry_after = cause, retryable, retry_after


class Malformed(TransportError):
    """The HTTP exchange worked but the body is not a usable completion (retried)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"malformed response: {detail}", True)


class Transport(Protocol):
    name: str

    async def complete(self, messages: list[dict], *, n: int, temperature: float,
                       max_tokens: int, seed: int, response_format: dict | None,
                       timeout_s: float) -> Completion: ...


# ---------------------------------------------------------------------- shared validation

def validate(choices: Iterable[tuple[int, Any]], n: int, prompt_tokens: Any,
             completion_tokens: Any, has_usage: bool) -> Completion:
    """The checks every transport applies: n non-empty texts (by choice index) and real usage."""
    ordered = sorted(choices, key=lambda c: c[0])
    if len(ordered) < n:
        raise Malformed(f"expected {n} choices, got {len(ordered)}")
    texts = []
    for _, content in ordered[:n]:
        if not isinstance(content, str) or not content.strip():
            raise Malformed("empty message content")
        texts.append(content)
    try:
        pt, ct = int(prompt_tokens or 0), int(completion_tokens or 0)
    except (TypeError, ValueError):
        raise Malformed("token usage is not a number") from None
    if not has_usage or (pt == 0 and ct == 0):
        raise Malformed("no token usage in the response")
    return Completion(texts, pt, ct)


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


def status_cause(status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> tuple[str, bool, float | None]:
    """The client's policy for an HTTP error status: 429 and 5xx retry, other 4xx do not."""
    if status == 429:
        return f"HTTP 429 rate limited ({message})", True, retry_after(headers)
    if status >= 500:
        return f"HTTP {status} ({message})", True, retry_after(headers)
    if status == 401:
        return "HTTP 401 authentication failed (check the API key)", False, None
    return f"HTTP {status} ({message})", False, None


def _litellm_text(exc: BaseException) -> str:
    msg = one_line(exc)
    if " - " in msg:  # litellm prefixes "litellm.X: X: OpenAIException - <server text>"
        msg = msg.split(" - ", 1)[1]
    return msg


def classify(exc: BaseException) -> tuple[str, bool, float | None]:
    """(one-line cause, retryable?, retry-after seconds) for an exception from a call."""
    if isinstance(exc, TransportError):
        return exc.cause, exc.retryable, exc.retry_after
    names = [type(e).__name__ for e in _chain(exc)]
    timeouts = ("Timeout", "APITimeoutError", "ReadTimeout", "TimeoutError")
    if "ConnectionRefusedError" in names:
        return "connection refused", True, None
    if any(n in ("ConnectError", "APIConnectionError", "ConnectionError", "ClientConnectorError",
                 "ServerDisconnectedError", "RemoteProtocolError", "gaierror") for n in names) \
            and not any(n in timeouts for n in names):
        text = " ".join(str(e) for e in _chain(exc)).lower()
        if "refused" in text:
            return "connection refused", True, None
        return "connection failed", True, None
    status = getattr(exc, "status_code", None)
    if any(n in timeouts for n in names):
        return "request timed out", True, None
    msg = _litellm_text(exc)
    if msg.startswith(("Expecting", "Unterminated", "Extra data", "Invalid control")) or \
            "JSONDecodeError" in names:
        return f"malformed response body ({msg})", True, None
    if "Connection error" in msg:
        return "connection failed", True, None
    if isinstance(status, int):
        return status_cause(status, msg, _headers(exc))
    return f"{type(exc).__name__}: {msg}", False, None


# ---------------------------------------------------------------------- litellm

class LitellmTransport:
    """One attempt through `litellm.acompletion` (any provider; retries off)."""

    name = "litellm"

    def __init__(self, model: str, api_base: str | None, api_key: str) -> None:
        import litellm

        litellm.suppress_debug_info = True
        self._litellm = litellm
        self.model, self.api_base, self._key = model, api_base, api_key

    async def complete(self, messages: list[dict], *, n: int, temperature: float,
                       max_tokens: int, seed: int, response_format: dict | None,
                       timeout_s: float) -> Completion:
        kwargs: dict[str, Any] = dict(
            model=self.model, api_base=self.api_base, api_key=self._key, messages=messages,
            n=n, temperature=temperature, max_tokens=max_tokens, seed=seed, timeout=timeout_s,
            num_retries=0, max_retries=0,
        )
        if response_format is not None:
            kwargs["response_format"] = response_format
        resp = await self._litellm.acompletion(**kwargs)
        choices = getattr(resp, "choices", None) or []
        usage = getattr(resp, "usage", None)
        return validate(
            ((getattr(c, "index", 0) or 0,
              getattr(getattr(c, "message", None), "content", None)) for c in choices),
            n, getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0),
            usage is not None)


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


def _error_message(body: bytes) -> str:
    """The server's error text: `{"error": {"message": ...}}`, `{"error": "..."}`, or raw."""
    try:
        data = json.loads(body)
    except ValueError:
        return one_line(body.decode("utf-8", "replace")) or "empty body"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data))
        if isinstance(err, dict) and err.get("message"):
            return one_line(err["message"])
        return one_line(err)
    return one_line(data)


class OpenAIHTTPTransport:
    """One attempt as `POST {api_base}/chat/completions` on a shared aiohttp session."""

    name = "http"

    def __init__(self, model: str, api_base: str, api_key: str | None, pool_size: int) -> None:
        if not api_base:
            raise ConfigError("executor.transport=http needs executor.api_base "
                              "(the OpenAI-compatible server's URL, e.g. http://127.0.0.1:8765/v1)")
        self.model = wire_model(model)
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.pool_size = max(1, int(pool_size))
        self._headers = {"Content-Type": "application/json"}
        if api_key and api_key != DUMMY_KEY:
            self._headers["Authorization"] = f"Bearer {api_key}"

    async def complete(self, messages: list[dict], *, n: int, temperature: float,
                       max_tokens: int, seed: int, response_format: dict | None,
                       timeout_s: float) -> Completion:
        import aiohttp

        body: dict[str, Any] = {"model": self.model, "messages": messages, "n": n,
                                "temperature": temperature, "max_tokens": max_tokens,
                                "seed": seed}
        if response_format is not None:
            body["response_format"] = response_format
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        try:
            async with asyncio.timeout(timeout_s):
                async with _session(self.pool_size).post(self.url, data=data,
                                                         headers=self._headers) as resp:
                    raw = await resp.read()
                    status, headers = resp.status, resp.headers
        except TimeoutError:
            raise TransportError("request timed out", True) from None
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError) or \
                "refused" in str(exc).lower()
            raise TransportError("connection refused" if refused else "connection failed",
                                 True) from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError):
            raise TransportError("connection failed", True) from None
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {one_line(exc)}", False) from None
        if status != 200:
            cause, retryable, after = status_cause(status, _error_message(raw), headers)
            raise TransportError(cause, retryable, after)
        return parse_openai_body(raw, n)


def parse_openai_body(raw: bytes, n: int) -> Completion:
    """An OpenAI chat.completion body -> Completion, or `Malformed` naming what is wrong."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise TransportError(f"malformed response body ({one_line(exc)})", True) from None
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
                      msg.get("content") if isinstance(msg, dict) else None))
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else None
    return validate(pairs, n, (usage or {}).get("prompt_tokens"),
                    (usage or {}).get("completion_tokens"), usage is not None)


# ---------------------------------------------------------------------- selection

def wire_model(model: str) -> str:
    """The model name an OpenAI-compatible server expects: litellm's route prefix removed."""
    for prefix in HTTP_PROVIDERS:
        if model.startswith(prefix + "/"):
            return model[len(prefix) + 1:]
    return model


def provider_of(model: str, api_base: str | None) -> str | None:
    """litellm's provider for `model` (None when litellm cannot tell)."""
    if model.startswith(tuple(p + "/" for p in HTTP_PROVIDERS)):
        return model.split("/", 1)[0]
    import litellm

    try:
        return litellm.get_llm_provider(model, api_base=api_base)[1]
    except Exception:  # noqa: BLE001 - unknown route: litellm will say so at call time
        return None


def select_transport(transport: str, model: str, api_base: str | None) -> str:
    """'http' or 'litellm' for `executor.transport` (auto: http only for OpenAI routes with
    an explicit api_base)."""
    if transport in ("http", "litellm"):
        return transport
    if transport != "auto":
        raise ConfigError(f"executor.transport {transport!r}: expected auto, litellm or http")
    provider = provider_of(model, api_base) if api_base else None
    if provider not in HTTP_PROVIDERS:
        return "litellm"
    if provider == "openai" and _openai_reasoning_model(model):
        return "litellm"  # litellm rewrites their parameters (max_completion_tokens, ...)
    return "http"


def _openai_reasoning_model(model: str) -> bool:
    import litellm

    try:
        return bool(litellm.supports_reasoning(model=model))
    except Exception:  # noqa: BLE001 - a name not in litellm's map: a plain chat model
        return False


def make_transport(cfg: Any, api_key: str) -> LitellmTransport | OpenAIHTTPTransport:
    """The transport `cfg` (an ExecutorConfig) asks for."""
    if select_transport(cfg.transport, cfg.model, cfg.api_base) == "http":
        return OpenAIHTTPTransport(cfg.model, cfg.api_base, api_key, cfg.max_concurrency)
    return LitellmTransport(cfg.model, cfg.api_base, api_key)
