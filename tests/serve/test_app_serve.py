"""The Serve app end to end on 127.0.0.1 with the tiny model: litellm and the `openai` client
(n, stop, top_k, streaming, refused fields), OpenAI errors, a full queue (429), a client timeout
that cancels generation, recovery (slow)."""

from __future__ import annotations

import socket

import httpx
import pytest

from w4s_ray.config import ExperimentConfig, RayConfig, ServeConfig

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(400)]

NAME = "tiny-serve-test"
MSGS = [{"role": "user", "content": "Write a workflow."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_session, tiny_model_dir):
    from w4s_ray.serve.checkpoint import resolve_model
    from w4s_ray.serve.manage import start_app, stop_app

    cfg = ExperimentConfig(
        ray=RayConfig(num_cpus=4),
        serve=ServeConfig(model=str(tiny_model_dir), model_name=NAME, port=_free_port(),
                          num_cpus=0.25, max_n=8, default_max_tokens=16,
                          max_batch_size=4, max_queue=2, startup_timeout_s=240),
    )
    url = start_app(cfg, resolve_model(cfg.serve.model), NAME)
    try:
        yield url
    finally:
        stop_app(NAME, shutdown_serve=True, shutdown_ray=False)


def _post(url: str, payload=None, content: bytes | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=payload, content=content, timeout=120)


def test_binds_loopback_and_lists_the_model(served):
    assert served.startswith("http://127.0.0.1:")
    assert httpx.get(f"{served}/health", timeout=10).json()["status"] == "ok"
    models = httpx.get(f"{served}/v1/models", timeout=10).json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == [NAME]
    assert httpx.get(f"{served}/v1/models/{NAME}", timeout=10).json()["id"] == NAME


def test_litellm_n3_returns_three_completions_with_usage(served):
    import litellm

    from w4s_ray.serve.client import register_served_model

    model_id = register_served_model(NAME)
    resp = litellm.completion(
        model=model_id, api_base=f"{served}/v1", api_key="unused", messages=MSGS,
        n=3, temperature=0.9, max_tokens=12, seed=21, num_retries=0, timeout=120,
    )
    assert len(resp.choices) == 3
    assert all(c.finish_reason in ("stop", "length") for c in resp.choices)
    assert all(isinstance(c.message.content, str) for c in resp.choices)
    u = resp.usage
    assert u.prompt_tokens > 0 and 3 <= u.completion_tokens <= 36
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert litellm.completion_cost(resp) == 0.0
    again = litellm.completion(
        model=model_id, api_base=f"{served}/v1", api_key="unused", messages=MSGS,
        n=3, temperature=0.9, max_tokens=12, seed=21, num_retries=0, timeout=120,
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in resp.choices]


def test_async_litellm_concurrent_requests(served):
    import asyncio

    import litellm

    async def many():
        return await asyncio.gather(*[
            litellm.acompletion(model=f"openai/{NAME}", api_base=f"{served}/v1", api_key="x",
                                messages=MSGS, n=2, max_tokens=6, seed=i, num_retries=0)
            for i in range(4)
        ])

    results = asyncio.run(many())
    assert [len(r.choices) for r in results] == [2, 2, 2, 2]


@pytest.mark.parametrize(
    ("payload", "content", "status", "param"),
    [
        (None, b"{not json", 400, None),
        ({"model": NAME}, None, 400, "messages"),
        ({"model": NAME, "messages": "hello"}, None, 400, "messages"),
        ({"model": NAME, "messages": MSGS, "n": 99}, None, 400, "n"),
        ({"model": NAME, "messages": MSGS, "n": "2"}, None, 400, "n"),
        ({"model": NAME, "messages": MSGS, "temperature": "hot"}, None, 400, "temperature"),
        ({"model": "gpt-17", "messages": MSGS}, None, 404, "model"),
    ],
)
def test_malformed_request_gets_openai_error_and_server_keeps_serving(
    served, payload, content, status, param
):
    bad = _post(served, payload, content)
    assert bad.status_code == status
    err = bad.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param
    ok = _post(served, {"model": NAME, "messages": MSGS, "max_tokens": 4, "n": 2, "seed": 1})
    assert ok.status_code == 200 and len(ok.json()["choices"]) == 2


def test_unknown_route_and_method_are_json_errors(served):
    r = httpx.get(f"{served}/v1/nothing", timeout=10)
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(f"{served}/v1/chat/completions", timeout=10)
    assert r.status_code == 405 and "error" in r.json()


def test_stop_and_default_model_name(served):
    r = _post(served, {"messages": MSGS, "max_tokens": 8, "stop": ["e", "a"], "seed": 3,
                       "temperature": 1.0, "n": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == NAME
    for choice in body["choices"]:
        assert "e" not in choice["message"]["content"] and "a" not in choice["message"]["content"]



def _client(url: str, **kw):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, **kw)


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10).json()


def test_openai_client_streaming_top_k_and_refused_fields(served):
    import openai

    c = _client(served, timeout=120)
    plain = c.chat.completions.create(model=NAME, messages=MSGS, n=2, max_tokens=20, seed=6)
    stream = c.chat.completions.create(model=NAME, messages=MSGS, n=2, max_tokens=20, seed=6,
                                       stream=True, stream_options={"include_usage": True})
    text, usage = {0: "", 1: ""}, None
    for chunk in stream:
        for ch in chunk.choices:
            text[ch.index] += ch.delta.content or ""
        usage = chunk.usage or usage
    assert [text[0], text[1]] == [ch.message.content for ch in plain.choices]
    assert usage.completion_tokens == plain.usage.completion_tokens
    greedy = c.chat.completions.create(model=NAME, messages=MSGS, temperature=0, max_tokens=12)
    top1 = c.chat.completions.create(model=NAME, messages=MSGS, temperature=1.0, max_tokens=12,
                                     seed=3, extra_body={"top_k": 1})
    assert top1.choices[0].message.content == greedy.choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="logit_bias"):
        c.chat.completions.create(model=NAME, messages=MSGS, logit_bias={"5": 10})
    with pytest.raises(openai.UnprocessableEntityError, match="json_validation_failed"):
        # The untrained tiny model writes no JSON: refused, never a non-JSON 200.
        c.chat.completions.create(model=NAME, messages=MSGS, max_tokens=20, seed=1,
                                  response_format={"type": "json_object"})


def test_client_timeout_cancels_generation_and_the_next_request_is_prompt(served):
    import time

    import openai

    before = _health(served)["cancelled"]
    with pytest.raises(openai.APITimeoutError):
        _client(served, timeout=0.3).chat.completions.create(
            model=NAME, messages=MSGS, n=4, max_tokens=1400, seed=2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _health(served)["active_rows"]:
        time.sleep(0.1)
    h = _health(served)
    assert h["active_rows"] == 0 and h["cancelled"] == before + 1
    t0 = time.monotonic()
    _client(served, timeout=30).chat.completions.create(model=NAME, messages=MSGS, max_tokens=1)
    assert time.monotonic() - t0 < 5


def test_a_full_queue_answers_429_with_retry_after(served):
    import asyncio

    import openai

    async def burst():
        client = openai.AsyncOpenAI(base_url=f"{served}/v1", api_key="x", max_retries=0,
                                    timeout=120)

        async def one(i):
            try:
                await client.chat.completions.create(model=NAME, messages=MSGS, seed=i,
                                                     max_tokens=1400)
                return "ok"
            except openai.RateLimitError as exc:
                return int(exc.response.headers["retry-after"])

        return await asyncio.gather(*[one(i) for i in range(12)])

    results = asyncio.run(burst())
    refused = [r for r in results if r != "ok"]
    assert refused and all(r >= 1 for r in refused)
    assert results.count("ok") >= 4 + 2  # a full batch and the queue behind it were served
