"""The simulator's HTTP server: an OpenAI-compatible chat-completions endpoint on aiohttp.

Routes: `POST /v1/chat/completions` (messages, n, temperature, seed, max_tokens,
response_format {"type": "json_object"}), `GET /v1/models`, `GET /health` (readiness of the
item index and the token counter), `GET /stats` (request counters, for tests and benches),
`GET /limits` (the RPM/TPM limit per key and model and the peaks clients offered, `limits.py`).

The simulator says what it is, so no client mistakes it for a real model: every reply carries
`X-W4S-Simulator: w4s-sim/<SIM_VERSION>`, `/v1/models` lists the profiles `owned_by: w4s-sim`,
and a request naming a model that is not a profile (`gpt-4o-mini` instead of
`sim-gpt-4o-mini`) is a 404 `model_not_found`: simulated answers are never passed off as a
real model's. Bump SIM_VERSION when the replies to the same request change (cached replies
are keyed on it).
Replies come from `model.respond`; the provider-style limit (`sim.rpm_limit`, `tpm_limit`,
off by default) is checked on arrival with the reply's exact tokens; faults (429 with
Retry-After, 500, hangs, malformed JSON) are decided after admission, per request from (seed, request counter), so a run with a fixed seed and one
client sees the same fault sequence. No torch, ray or litellm is imported here.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from aiohttp import web

from w4s_ray.config import SimConfig
from w4s_ray.errors import W4SError
from w4s_ray.executor.sim import tokens
from w4s_ray.executor.sim.index import ItemIndex, SimItem, items_from_benchmarks, items_from_jsonl
from w4s_ray.executor.sim.limits import SimLimits, key_id
from w4s_ray.executor.sim.model import SimRequest, _unit, respond
from w4s_ray.executor.sim.profiles import PROFILES, Profile

READY_LINE = "W4S_SIM_LISTENING"
SIM_VERSION = "1"
SIM_TAG = f"w4s-sim/{SIM_VERSION}"
SIM_HEADER = "X-W4S-Simulator"


class SimState:
    """Everything a request handler needs: config, the item index, counters."""

    def __init__(self, cfg: SimConfig, data_dir: str | None, items_file: str | None):
        if cfg.profile.rsplit("/", 1)[-1] not in PROFILES:
            raise W4SError(f"unknown sim profile {cfg.profile!r} (known: {', '.join(sorted(PROFILES))})")
        self.cfg = cfg
        self.data_dir = data_dir
        self.items_file = items_file
        self.index = ItemIndex([])
        self.index_error: str | None = None
        self.ready = threading.Event()
        self.counter = 0
        self.stats: Counter[str] = Counter()
        self.limits = SimLimits(cfg.rpm_limit, cfg.tpm_limit, cfg.limit_window_s)
        self.started = time.time()

    def build_index(self) -> None:
        """Runs in a thread: the server already listens while items load."""
        try:
            tokens.load()
            items: list[SimItem]
            if self.items_file:
                items = items_from_jsonl(self.items_file)
            else:
                try:
                    items = items_from_benchmarks(self.data_dir)
                except ImportError as exc:
                    items = []
                    self.index_error = f"benchmark API unavailable: {exc}"
            self.index = ItemIndex(items)
        except Exception as exc:  # noqa: BLE001 - reported via /health, replies stay generic
            self.index_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def profile_for(self, model: str | None) -> Profile | None:
        """The profile a request names (no name: the server's --profile); None: unknown."""
        name = (model or "").rsplit("/", 1)[-1]
        if not name:
            return PROFILES[self.cfg.profile.rsplit("/", 1)[-1]]
        return PROFILES.get(name)

    def latency_s(self, profile: Profile, completion_tokens: int, rng: random.Random) -> float:
        mode = self.cfg.latency
        if mode == "none":
            return 0.0
        if mode == "fixed":
            return (self.cfg.latency_ms if self.cfg.latency_ms is not None else profile.latency_median_ms) / 1000
        median = self.cfg.latency_ms if (mode == "lognormal" and self.cfg.latency_ms is not None) \
            else profile.latency_median_ms
        base = median * rng.lognormvariate(0.0, profile.latency_sigma)
        return (base + profile.ms_per_token * completion_tokens) / 1000


def _error(status: int, message: str, etype: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": etype, "code": status}},
                             status=status, headers=headers)


async def _wait_ready(state: SimState) -> None:
    if not state.ready.is_set():
        await asyncio.get_running_loop().run_in_executor(None, state.ready.wait)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state: SimState = request.app["state"]
    state.stats["requests"] += 1
    try:
        body = await request.json()
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError("messages must be a non-empty list")
        n = int(body.get("n") or 1)
        temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        rf = body.get("response_format") or {}
        json_mode = isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema")
        seed = body.get("seed")
    except (ValueError, KeyError, TypeError) as exc:
        state.stats["status_400"] += 1
        return _error(400, f"invalid request: {exc}", "invalid_request_error")
    if not 1 <= n <= 128:
        state.stats["status_400"] += 1
        return _error(400, "n must be between 1 and 128", "invalid_request_error")
    profile = state.profile_for(body.get("model"))
    if profile is None:
        state.stats["status_404"] += 1
        return _error(404, f"The model `{body.get('model')}` does not exist on the w4s simulator "
                           f"(it serves {', '.join(sorted(PROFILES))})", "model_not_found")

    cfg = state.cfg
    if cfg.one_choice:
        n = 1  # a server that takes no `n` (Ollama's /v1): one choice, charged as one
    await _wait_ready(state)
    req = SimRequest(model=profile.name, messages=messages, n=n, temperature=temperature,
                     seed=seed, max_tokens=max_tokens, json_mode=json_mode)
    texts = respond(req, state.index, profile)
    choices, completion_tokens = [], 0
    for j, text in enumerate(texts):
        finish = "stop"
        ntok = tokens.count(text)
        if max_tokens is not None and ntok > int(max_tokens):
            text, ntok, finish = tokens.truncate(text, int(max_tokens)), int(max_tokens), "length"
        completion_tokens += ntok
        choices.append({"index": j, "message": {"role": "assistant", "content": text},
                        "finish_reason": finish, "logprobs": None})
    prompt_tokens = tokens.count_messages(messages)
    # what the token limit counts: OpenAI and Anthropic count n x max_tokens at admission
    charged = (n * int(max_tokens) if cfg.tpm_charge == "requested" and max_tokens is not None
               else completion_tokens)
    wait = state.limits.check(key_id(request.headers.get("Authorization")), profile.name,
                              prompt_tokens + charged)
    if wait > 0:
        state.stats["limit_429"] += 1
        return _error(429, f"Rate limit reached for {profile.name} (simulated "
                           f"{cfg.rpm_limit or '-'} RPM, {cfg.tpm_limit or '-'} TPM per "
                           f"{cfg.limit_window_s:g} s window); retry after {wait:.3f} s",
                      "rate_limit_error", headers={"Retry-After": str(max(1, round(wait))),
                                                   "retry-after-ms": str(int(wait * 1000) + 1)})

    counter = state.counter
    state.counter += 1
    u = _unit("fault", cfg.seed, counter)
    edges = [cfg.rate_429, cfg.rate_500, cfg.rate_hang, cfg.rate_malformed]
    fault = None
    acc = 0.0
    for name, rate in zip(("429", "500", "hang", "malformed"), edges, strict=True):
        acc += rate
        if u < acc:
            fault = name
            break
    if fault == "429":
        state.stats["fault_429"] += 1
        ra = cfg.retry_after_s
        return _error(429, "Rate limit reached (simulated)", "rate_limit_error",
                      headers={"Retry-After": f"{ra:g}", "retry-after-ms": str(int(ra * 1000))})
    if fault == "500":
        state.stats["fault_500"] += 1
        return _error(500, "The server had an error (simulated)", "server_error")
    if fault == "hang":
        state.stats["fault_hang"] += 1
        await asyncio.sleep(cfg.hang_s)

    rng = random.Random(int(_unit("latency", cfg.seed, counter) * 2**53))
    await asyncio.sleep(state.latency_s(profile, completion_tokens // max(1, n), rng))

    payload = {
        "id": f"chatcmpl-sim-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": profile.name, "system_fingerprint": "fp_w4s_sim",
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
    if fault == "malformed":
        state.stats["fault_malformed"] += 1
        text = json.dumps(payload)
        return web.Response(text=text[: len(text) // 2], content_type="application/json")
    state.stats["completions"] += 1
    state.stats["choices"] += len(choices)
    return web.json_response(payload)


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "w4s-sim",
         "root": SIM_TAG} for name in PROFILES]})


async def health(request: web.Request) -> web.Response:
    state: SimState = request.app["state"]
    return web.json_response({
        "status": "ok", "index": "ready" if state.ready.is_set() else "building",
        "items": len(state.index), "index_error": state.index_error,
        "token_counter": tokens.method, "profile": state.cfg.profile, "simulator": SIM_TAG,
    })


async def stats(request: web.Request) -> web.Response:
    state: SimState = request.app["state"]
    return web.json_response(dict(state.stats))


async def limits(request: web.Request) -> web.Response:
    state: SimState = request.app["state"]
    return web.json_response(state.limits.report())


@web.middleware
async def _identify(request: web.Request, handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers[SIM_HEADER] = SIM_TAG
    return resp


def build_app(state: SimState) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[_identify])
    app["state"] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", stats)
    app.router.add_get("/limits", limits)
    return app


async def _serve(state: SimState) -> None:
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, state.cfg.host, state.cfg.port, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        reason = "address already in use" if exc.errno == 98 else (exc.strerror or str(exc))
        raise W4SError(f"cannot serve the simulator on {state.cfg.host}:{state.cfg.port}: {reason}") from None
    port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for
    threading.Thread(target=state.build_index, name="sim-index", daemon=True).start()
    print(f"{READY_LINE} port={port}", flush=True)
    print(f"w4s sim: serving OpenAI-compatible API at http://{state.cfg.host}:{port}/v1 "
          f"(profile {state.cfg.profile}); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def serve(cfg: SimConfig, data_dir: str | Path | None = None, items_file: str | None = None) -> None:
    """Serve until interrupted; raises W4SError when the port cannot be bound."""
    state = SimState(cfg, str(data_dir) if data_dir else None, items_file)
    try:
        asyncio.run(_serve(state))
    except (KeyboardInterrupt, web.GracefulExit):  # Ctrl-C / SIGTERM: a normal stop
        pass
