"""`serve.backend: vllm`: the mapping onto vLLM (with a stand-in `vllm` module, everywhere) and
the real engine behind the same API (only where vLLM and a GPU are present; skipped here)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import sys
import types
from types import SimpleNamespace

import pytest

from w4s_ray.models.sampling import SamplingParams


class _Params:
    def __init__(self, **kw):
        self.kw = kw


class _Structured:
    def __init__(self, **kw):
        self.kw = kw


class _FakeEngine:
    """Yields cumulative outputs like vLLM's AsyncLLMEngine.generate."""

    def __init__(self, steps):
        self.steps, self.aborted, self.prompts = steps, [], []

    async def generate(self, prompt, params, request_id):
        self.prompts.append(prompt)
        for outs in self.steps:
            await asyncio.sleep(0)
            yield SimpleNamespace(outputs=[SimpleNamespace(**o) for o in outs])

    async def abort(self, request_id):
        self.aborted.append(request_id)


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.SamplingParams = _Params
    sp = types.ModuleType("vllm.sampling_params")
    sp.StructuredOutputsParams = _Structured
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    return mod


def test_sampling_settings_map_one_to_one(fake_vllm):
    from w4s_ray.serve.vllm_engine import vllm_sampling

    p = vllm_sampling(SamplingParams(n=3, temperature=0.4, top_p=0.9, top_k=0, max_tokens=9,
                                     seed=5, stop=("###",), repetition_penalty=1.2,
                                     frequency_penalty=0.5, presence_penalty=-0.5),
                      json_object=False, schema=None)
    assert p.kw == dict(n=3, temperature=0.4, top_p=0.9, top_k=-1, max_tokens=9, seed=5,
                        stop=["###"], repetition_penalty=1.2, frequency_penalty=0.5,
                        presence_penalty=-0.5)
    schema = {"type": "object"}
    j = vllm_sampling(SamplingParams(top_k=7), json_object=True, schema=schema)
    assert j.kw["top_k"] == 7 and j.kw["structured_outputs"].kw == {"json": schema}
    o = vllm_sampling(SamplingParams(), json_object=True, schema=None)
    assert o.kw["structured_outputs"].kw == {"json_object": True}


def test_stream_turns_cumulative_outputs_into_deltas_and_aborts_when_left(fake_vllm,
                                                                          tiny_model_dir):
    from w4s_ray.serve.vllm_engine import VLLMGenerator

    gen = VLLMGenerator.__new__(VLLMGenerator)  # no engine start-up: a stand-in engine below
    gen.max_rows, gen.in_flight, gen.avg_request_s = 2, 0, 1.0
    gen.engine = _FakeEngine([
        [dict(index=0, text="Hel", token_ids=[1], finish_reason=None),
         dict(index=1, text="A", token_ids=[1], finish_reason=None)],
        [dict(index=0, text="Hello", token_ids=[1, 2], finish_reason="stop"),
         dict(index=1, text="AB", token_ids=[1, 2], finish_reason="length")],
    ])

    async def collect():
        return [e async for e in gen.stream([1, 2, 3], SamplingParams(n=2, max_tokens=2))]

    events = asyncio.run(collect())
    assert events[:2] == [("delta", 0, "Hel"), ("delta", 1, "A")]
    assert ("finish", 0, "stop", 2) in events and ("finish", 1, "length", 2) in events
    done = events[-1][1]
    assert [c.text for c in done.choices] == ["Hello", "AB"] and done.prompt_tokens == 3
    assert gen.engine.prompts == [{"prompt_token_ids": [1, 2, 3]}] and gen.in_flight == 0
    assert gen.engine.aborted == []

    async def leave_early():
        agen = gen.stream([1], SamplingParams(n=2, max_tokens=2))
        await agen.__anext__()
        await agen.aclose()  # the client went away

    asyncio.run(leave_early())
    assert len(gen.engine.aborted) == 1 and gen.in_flight == 0


def _gpu_with_vllm() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not _gpu_with_vllm(), reason="needs vLLM and a CUDA GPU")
def test_vllm_engine_behind_the_same_api(ray_session, smollm2_dir):
    import openai

    from w4s_ray.config import ExperimentConfig, RayConfig, ServeConfig
    from w4s_ray.serve.checkpoint import resolve_model
    from w4s_ray.serve.manage import start_app, stop_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ExperimentConfig(ray=RayConfig(num_cpus=4), serve=ServeConfig(
        model=str(smollm2_dir), model_name="vllm-test", port=port, backend="vllm", num_gpus=1,
        startup_timeout_s=900))
    url = start_app(cfg, resolve_model(cfg.serve.model), "vllm-test")
    try:
        c = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
        msgs = [{"role": "user", "content": "Count from 1 to 10."}]
        r = c.chat.completions.create(model="vllm-test", messages=msgs, n=2, max_tokens=16,
                                      seed=1, stop=["5"], extra_body={"top_k": 5})
        assert len(r.choices) == 2 and all("5" not in ch.message.content for ch in r.choices)
        streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model="vllm-test", messages=msgs, max_tokens=16, temperature=0, stream=True)
            if ch.choices)
        greedy = c.chat.completions.create(model="vllm-test", messages=msgs, max_tokens=16,
                                           temperature=0)
        assert streamed == greedy.choices[0].message.content
        j = c.chat.completions.create(
            model="vllm-test", max_tokens=60, response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Reply in JSON with keys name and age."}])
        assert isinstance(json.loads(j.choices[0].message.content), dict)
        with pytest.raises(openai.BadRequestError, match="logit_bias"):
            c.chat.completions.create(model="vllm-test", messages=msgs, logit_bias={"1": 1})
    finally:
        stop_app("vllm-test", shutdown_serve=True, shutdown_ray=False)
