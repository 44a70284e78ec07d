"""The two executor transports (plain HTTP and litellm) behave the same behind ExecutorClient.

Same seeded request -> same texts, usage and dollars; the same injected faults -> the same
retries and the same one-line errors; `auto` picks HTTP only for OpenAI-compatible routes with
an api_base; the HTTP transport sends the OpenAI wire format and never leaks the key.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket

import pytest
from aiohttp import web

from tests.fixtures.sim import SYNTHETIC_ITEMS
from w4s_ray.config import CacheConfig, ExecutorConfig
from w4s_ray.errors import ConfigError, ExecutorError, ExecutorUnreachable
from w4s_ray.executor.client import ExecutorClient
from w4s_ray.executor.providers import resolve_endpoint
from w4s_ray.executor.transport import (
    Malformed,
    OpenAIHTTPTransport,
    TransportError,
    choose_transport,
    parse_openai_body,
)


def select_transport(transport: str, model: str, api_base: str | None) -> str:
    return choose_transport(transport, resolve_endpoint(
        ExecutorConfig(model=model, api_base=api_base, transport="auto")))

FAKE_KEY = "sk-test-FAKEKEY-0123456789"
Q = SYNTHETIC_ITEMS[0]["question"]
TRANSPORTS = ("http", "litellm")


def make_cfg(url, tmp_path, transport, **kw) -> ExecutorConfig:
    base = dict(api_base=url, transport=transport, cache=CacheConfig(enabled=False),
                retry_base_delay_s=0.01, retry_max_delay_s=0.05, max_retries=2, timeout_s=10)
    base.update(kw)
    return ExecutorConfig(**base)


def msgs(text=Q):
    return [{"role": "user", "content": text}]


async def outcome(client: ExecutorClient, messages, **kw):
    try:
        r = await client.chat(messages, **kw)
        return ("ok", r.texts, r.prompt_tokens, r.completion_tokens, r.cost_usd)
    except ExecutorError as exc:
        return ("error", type(exc).__name__, str(exc))


def same_kind(text: str, url: str) -> str:
    """An error line without what legitimately differs between two runs: the simulator's URL
    and where the truncated JSON body happened to be cut (its id is random)."""
    return re.sub(r"malformed response body \(.*\)$", "malformed response body (...)",
                  text.replace(url, "URL"))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------- same answers


async def test_both_transports_return_identical_results(sim_server, tmp_path):
    clients = {t: ExecutorClient(make_cfg(sim_server.url, tmp_path, t, seed=5)) for t in TRANSPORTS}
    assert {t: c.transport.name for t, c in clients.items()} == {"http": "http", "litellm": "litellm"}
    requests = [
        (msgs(), {}),
        (msgs("Verify step by step: " + SYNTHETIC_ITEMS[2]["question"]), {"n": 6, "temperature": 1.0}),
        (msgs(Q + '\nReply in JSON with keys ["reasoning", "answer"].'), {"response_format": "json"}),
        ([{"role": "system", "content": "You are terse."}, *msgs(SYNTHETIC_ITEMS[1]["question"])],
         {"max_tokens": 7, "occurrence": 2}),
    ]
    for messages, kw in requests:
        got = {t: await outcome(c, messages, **kw) for t, c in clients.items()}
        assert got["http"][0] == "ok", got
        assert got["http"] == got["litellm"]
    assert json.loads((await clients["http"].chat(requests[2][0], response_format="json")).texts[0])
    for t, c in clients.items():
        s = c.stats()
        calls = 5 if t == "http" else 4  # the json check above made one more http call
        assert s["api_calls"] == s["calls"] == calls and s["errors"] == 0 and s["cost_usd"] > 0, t


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_many_concurrent_calls_through_one_pool(sim_server, tmp_path, transport):
    c = ExecutorClient(make_cfg(sim_server.url, tmp_path, transport, max_concurrency=8))
    res = await asyncio.gather(*[c.chat(msgs(f"{Q} copy {i}")) for i in range(40)])
    assert all(r.texts[0].strip() for r in res) and c.stats()["api_calls"] == 40


def test_chat_sync_over_http_from_threads(sim_server, tmp_path):
    import threading

    c = ExecutorClient(make_cfg(sim_server.url, tmp_path, "http"))
    out: dict[int, str] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, c.chat_sync(msgs(f"{Q} t{i}")).texts[0]))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 8 and all(out.values())


# ---------------------------------------------------------------------- same faults


@pytest.mark.parametrize("fault, expect", [
    ({"rate_429": 1.0, "retry_after_s": 0.01}, "HTTP 429 rate limited (Rate limit reached (simulated))"),
    ({"rate_500": 1.0}, "HTTP 500 (The server had an error (simulated))"),
    ({"rate_malformed": 1.0}, "malformed response body ("),
])
async def test_fault_gives_the_same_error_through_both(sim_factory, tmp_path, fault, expect):
    errors = {}
    for t in TRANSPORTS:
        h = sim_factory(latency="none", **fault)
        c = ExecutorClient(make_cfg(h.url, tmp_path, t))
        with pytest.raises(ExecutorError) as err:
            await c.chat(msgs())
        text = str(err.value)
        assert "\n" not in text and "after 3 attempts" in text and expect in text, text
        assert h.stats()["requests"] == 3 and c.stats()["retries"] == 2
        errors[t] = same_kind(text, h.url)
    assert errors["http"] == errors["litellm"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hang_times_out_and_is_retried(sim_factory, tmp_path, transport):
    h = sim_factory(rate_hang=1.0, hang_s=30.0, latency="none")
    c = ExecutorClient(make_cfg(h.url, tmp_path, transport, max_retries=1, timeout_s=0.5))
    with pytest.raises(ExecutorError, match="failed after 2 attempts: request timed out$"):
        await c.chat(msgs())
    assert h.stats()["fault_hang"] == 2


async def test_mixed_faults_same_sequence_same_outcomes(sim_factory, tmp_path):
    """One sequential client per transport against its own simulator with the same fault seed:
    the server draws the same faults in the same order, so both see the same retries and end
    with the same answers or the same one-line errors."""
    runs = {}
    for t in TRANSPORTS:
        h = sim_factory(rate_429=0.1, rate_500=0.1, rate_malformed=0.1, retry_after_s=0.01,
                        latency="none", seed=7)
        c = ExecutorClient(make_cfg(h.url, tmp_path, t, max_retries=1))
        outs = [await outcome(c, msgs(f"question {i}")) for i in range(40)]
        outs = [tuple(same_kind(x, h.url) if isinstance(x, str) else x for x in o) for o in outs]
        s, server = c.stats(), h.stats()
        assert server["fault_429"] + server["fault_500"] + server["fault_malformed"] == \
            s["retries"] + s["errors"]
        runs[t] = (outs, s["retries"], s["errors"])
    assert runs["http"] == runs["litellm"]
    outs, retries, errors = runs["http"]
    assert retries > 0 and errors > 0  # the seed exercises both paths
    assert all(o[0] == "ok" or "failed after 2 attempts: " in o[2] for o in outs)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_unreachable_api_base(tmp_path, transport):
    url = f"http://127.0.0.1:{free_port()}/v1"
    c = ExecutorClient(make_cfg(url, tmp_path, transport, max_retries=1))
    with pytest.raises(ExecutorUnreachable) as err:
        await c.chat(msgs())
    assert str(err.value).startswith(
        f"cannot reach executor at {url}: connection refused (after 2 attempts); is the server "
        "running?")


# ---------------------------------------------------------------------- the HTTP wire


@pytest.fixture
async def fake_openai():
    """An in-test OpenAI-style server: `/<mode>/chat/completions` answers per mode and records
    each request's headers and JSON body."""
    seen: list[dict] = []
    ok_body = {"choices": [{"index": 1, "message": {"role": "assistant", "content": "second"}},
                           {"index": 0, "message": {"role": "assistant", "content": "first"}}],
               "usage": {"prompt_tokens": 11, "completion_tokens": 4}}

    async def handler(request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        seen.append({"mode": mode, "headers": dict(request.headers), "body": await request.json()})
        auth = request.headers.get("Authorization", "")
        if mode == "ok":
            return web.json_response(ok_body)
        if mode == "echo_key_401":
            return web.json_response({"error": {"message": f"Incorrect API key provided: {auth}"}},
                                     status=401)
        if mode == "echo_key_400":
            return web.json_response({"error": {"message": f"bad request from {auth}"}}, status=400)
        if mode == "429_plain":
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "0.01"})
        if mode == "503_text":
            return web.Response(text="upstream overloaded", status=503)
        if mode == "html_200":
            return web.Response(text="<html>proxy login</html>", content_type="text/html")
        if mode == "no_choices":
            return web.json_response({"id": "x", "usage": ok_body["usage"]})
        if mode == "no_usage":
            return web.json_response({"choices": ok_body["choices"]})
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_post("/{mode}/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_http_sends_openai_wire_format(fake_openai, tmp_path, monkeypatch):
    base, seen = fake_openai
    monkeypatch.setenv("W4S_TEST_KEY", FAKE_KEY)
    c = ExecutorClient(make_cfg(f"{base}/ok", tmp_path, "auto", api_key_env="W4S_TEST_KEY", seed=3))
    assert c.transport.name == "http"
    res = await c.chat(msgs(), n=2, temperature=0.7, max_tokens=33, response_format="json")
    assert res.texts == ["first", "second"]  # ordered by choice index
    assert (res.prompt_tokens, res.completion_tokens) == (11, 4)
    body, headers = seen[-1]["body"], seen[-1]["headers"]
    assert body["model"] == "sim-gpt-4o-mini" and body["messages"] == msgs()
    assert (body["n"], body["temperature"], body["max_tokens"]) == (2, 0.7, 33)
    assert body["response_format"] == {"type": "json_object"} and isinstance(body["seed"], int)
    assert headers["Authorization"] == f"Bearer {FAKE_KEY}"
    # A local server with no key configured gets no Authorization header at all.
    monkeypatch.delenv("W4S_TEST_KEY")
    c2 = ExecutorClient(make_cfg(f"{base}/ok", tmp_path, "http", api_key_env="W4S_TEST_KEY"))
    await c2.chat(msgs())
    assert "Authorization" not in seen[-1]["headers"] and "response_format" not in seen[-1]["body"]


@pytest.mark.parametrize("mode, retried, expect", [
    ("429_plain", True, "HTTP 429 rate limited (slow down)"),
    ("503_text", True, "HTTP 503 (upstream overloaded)"),
    ("html_200", True, "malformed response body (Expecting value"),
    ("no_choices", True, "malformed response: expected 1 choices, got 0"),
    ("no_usage", True, "malformed response: no token usage in the response"),
    ("echo_key_400", False, "HTTP 400 (bad request from Bearer ***)"),
    ("echo_key_401", False, "HTTP 401 authentication failed (check the API key)"),
])
async def test_http_status_and_body_errors(fake_openai, tmp_path, monkeypatch, mode, retried, expect):
    base, seen = fake_openai
    monkeypatch.setenv("W4S_TEST_KEY", FAKE_KEY)
    c = ExecutorClient(make_cfg(f"{base}/{mode}", tmp_path, "http", api_key_env="W4S_TEST_KEY"))
    with pytest.raises(ExecutorError) as err:
        await c.chat(msgs())
    text = str(err.value) + repr(err.value)
    assert expect in text and "\n" not in str(err.value) and FAKE_KEY not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert len(seen) == (3 if retried else 1)


async def test_http_key_never_leaks_into_logs_or_repr(fake_openai, tmp_path, monkeypatch, caplog, capfd):
    import logging

    base, _ = fake_openai
    monkeypatch.setenv("W4S_TEST_KEY", FAKE_KEY)
    caplog.set_level(logging.DEBUG)
    texts = []
    for mode in ("echo_key_401", "echo_key_400", "ok"):
        c = ExecutorClient(make_cfg(f"{base}/{mode}", tmp_path, "http", api_key_env="W4S_TEST_KEY"))
        texts += [repr(c), repr(c.transport), str(c.stats())]
        try:
            await c.chat(msgs())
        except ExecutorError as exc:
            texts.append(str(exc) + repr(exc))
    out, err = capfd.readouterr()
    assert all(FAKE_KEY not in t for t in [*texts, out, err, caplog.text])


# ---------------------------------------------------------------------- unit level


@pytest.mark.parametrize("body, n, detail", [
    (b'{"choices": [', 1, "malformed response body"),
    (b"[1, 2]", 1, "malformed response: body is a JSON list, not an object"),
    (b'{"choices": [{"index": 0, "message": {"content": "  "}}], "usage": {"prompt_tokens": 1}}', 1,
     "malformed response: empty message content"),
    (b'{"choices": [{"index": 0, "message": {"content": "a"}}], "usage": {"prompt_tokens": 1}}', 2,
     "malformed response: expected 2 choices, got 1"),
    (b'{"choices": [{"index": 0, "message": {"content": "a"}}], "usage": {"prompt_tokens": "x"}}', 1,
     "malformed response: token usage is not a number"),
])
def test_parse_openai_body_rejects_unusable_bodies(body, n, detail):
    with pytest.raises(TransportError) as err:
        parse_openai_body(body, n=n)
    assert str(err.value).startswith(detail) and err.value.failure.retryable


def test_parse_openai_body_accepts_a_completion():
    body = json.dumps({"choices": [{"message": {"content": "x"}}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 0}}).encode()
    done = parse_openai_body(body, n=1)
    assert (done.texts, done.prompt_tokens, done.completion_tokens) == (["x"], 3, 0)
    assert issubclass(Malformed, TransportError)


@pytest.mark.parametrize("transport, model, api_base, expect", [
    ("auto", "openai/sim-gpt-4o-mini", "http://127.0.0.1:8765/v1", "http"),
    ("auto", "hosted_vllm/Qwen2.5-7B", "http://10.0.0.5:8000/v1", "http"),
    ("auto", "gpt-4o-mini", "https://gateway.example.com/v1", "http"),
    ("auto", "openai/gpt-4o-mini", None, "litellm"),
    ("auto", "o3-mini", "https://api.openai.com/v1", "litellm"),  # litellm maps max_tokens
    ("auto", "openai/gpt-5-mini", "https://api.openai.com/v1", "litellm"),
    ("auto", "gpt-4o-mini", None, "litellm"),
    ("auto", "anthropic/claude-3-5-sonnet-20240620", "https://proxy.example.com", "litellm"),
    ("auto", "azure/my-deployment", "https://x.openai.azure.com", "litellm"),
    ("auto", "ollama/llama3", "http://127.0.0.1:11434", "litellm"),
    # litellm cannot place the name, but there is a URL: an OpenAI-compatible server's name.
    ("auto", "no-provider-model", "http://127.0.0.1:1/v1", "http"),
    ("litellm", "openai/sim-gpt-4o-mini", "http://127.0.0.1:8765/v1", "litellm"),
    ("http", "anthropic/claude-via-gateway", "http://127.0.0.1:4000/v1", "http"),
])
def test_auto_selection_table(transport, model, api_base, expect):
    assert select_transport(transport, model, api_base) == expect


def test_http_without_api_base_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("W4S_TEST_KEY", FAKE_KEY)
    with pytest.raises(ConfigError, match="executor.transport=http needs executor.api_base"):
        ExecutorClient(make_cfg(None, tmp_path, "http", model="gpt-4o-mini", api_key_env="W4S_TEST_KEY"))
    t = OpenAIHTTPTransport("hosted_vllm/m", "http://h/v1/", None, 4)
    assert (t.url, t.model) == ("http://h/v1/chat/completions", "m")
    with pytest.raises(ConfigError, match="transport 'grpc'"):
        select_transport("grpc", "openai/x", "http://h/v1")


def _litellm_without_n(monkeypatch, failing=frozenset()):
    """A litellm transport to a provider that takes no `n` (Anthropic, Ollama ...), answering
    "reply <seed>" per request, or raising for the seeds in `failing`; and what it was sent."""
    from types import SimpleNamespace

    from w4s_ray.executor.providers import SENT_PARAMS, Endpoint
    from w4s_ray.executor.transport import LitellmTransport

    sent = []

    async def acompletion(**kw):
        sent.append(kw)
        if kw["seed"] in failing:
            raise RuntimeError(f"429 for seed {kw['seed']}")
        msg = SimpleNamespace(content=f"reply {kw['seed']}")
        return SimpleNamespace(choices=[SimpleNamespace(index=0, message=msg, finish_reason="stop")],
                               usage=SimpleNamespace(prompt_tokens=7, completion_tokens=2))

    no_n = Endpoint("anthropic", "anthropic/claude-x", "claude-x", None, False, None,
                    frozenset(SENT_PARAMS) - {"n"})
    t = LitellmTransport(no_n, "sk-test")
    monkeypatch.setattr(t, "_litellm", SimpleNamespace(acompletion=acompletion))
    return t, sent


async def test_litellm_sends_n_requests_where_the_provider_takes_no_n(monkeypatch):
    """Anthropic, Ollama ...: a call for n samples is n requests (each its own seed), and the
    transport says so beforehand, so the rate limiter counts n requests, not one."""
    from w4s_ray.executor.providers import SENT_PARAMS, Endpoint
    from w4s_ray.executor.transport import LitellmTransport

    t, sent = _litellm_without_n(monkeypatch)
    assert (t.requests_for(1), t.requests_for(3)) == (1, 3)
    done = await t.complete(msgs(), n=3, temperature=1.0, max_tokens=20, seed=5,
                            response_format=None, timeout_s=5)
    assert done.texts == ["reply 5", "reply 6", "reply 7"] and done.requests == 3
    assert (done.prompt_tokens, done.completion_tokens) == (21, 6)
    assert all("n" not in kw for kw in sent)
    with_n = LitellmTransport(Endpoint("openai", "openai/m", "m", None, True, None,
                                       frozenset(SENT_PARAMS)), "sk-test")
    assert with_n.requests_for(3) == 1


async def test_a_fan_out_with_some_requests_failed_keeps_the_answered_ones(monkeypatch):
    """One of n one-sample requests fails: the others were answered (and paid for), so the
    transport hands them back with the indices that failed instead of failing all n."""
    from w4s_ray.executor.transport import PartFailed

    failing = {6}
    t, _ = _litellm_without_n(monkeypatch, failing)
    with pytest.raises(PartFailed) as info:
        await t.complete(msgs(), n=3, temperature=1.0, max_tokens=20, seed=5,
                         response_format=None, timeout_s=5)
    part = info.value
    assert part.missing == [1] and sorted(part.done) == [0, 2]
    assert [part.done[j].texts for j in (0, 2)] == [["reply 5"], ["reply 7"]]
    assert "429 for seed 6" in str(part.cause)
    failing.update({5, 7})  # every request failed: the first failure as it is
    with pytest.raises(RuntimeError, match="429 for seed 5"):
        await t.complete(msgs(), n=3, temperature=1.0, max_tokens=20, seed=5,
                         response_format=None, timeout_s=5)
