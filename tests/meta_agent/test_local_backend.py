"""The local backend and `w4s serve` sample the same way: same engine, settings, defaults."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from w4s_ray.config import MetaAgentConfig

MSGS = [{"role": "system", "content": "You write Python workflows."},
        {"role": "user", "content": "Write solver(agent, task) for gsm8k."}]


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    from w4s_ray.serve.checkpoint import resolve_model
    from w4s_ray.serve.generation import ChatGenerator
    from w4s_ray.serve.handler import ChatHandler

    threads = torch.get_num_threads()
    gen = ChatGenerator.load(resolve_model(str(tiny_model_dir)))
    gen.start()
    yield ChatHandler(gen, "m")
    gen.close()
    torch.set_num_threads(threads)


def _served_texts(handler, **fields) -> list[str]:
    reply = asyncio.run(handler.chat(json.dumps({"messages": MSGS, **fields}).encode()))
    assert reply.status == 200, reply.body
    return [c["message"]["content"].strip() for c in reply.body["choices"]]


@pytest.mark.parametrize("extra", [{}, {"top_k": 5, "top_p": 0.9, "repetition_penalty": 1.3}])
def test_local_backend_gives_what_the_server_gives_for_the_same_settings(
        tiny_model_dir, served, extra):
    from w4s_ray.meta_agent.local_backend import LocalMetaAgent

    cfg = MetaAgentConfig(model=str(tiny_model_dir), max_tokens=24, **extra)
    local = LocalMetaAgent(cfg).generate(MSGS, 3, seed=11)
    remote = _served_texts(served, n=3, seed=11, max_tokens=24, temperature=cfg.temperature,
                           **extra)
    assert local == remote and len(set(local)) > 1
