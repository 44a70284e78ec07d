"""Check the executor before a run spends anything: `check_executor(cfg.executor)`.

Builds the client the run would build (provider, URL, key, price: each a one-line error when
wrong), asks an OpenAI-compatible server what it is (the simulator refuses a real model
name), and makes ONE cheap uncached call (a few tokens) with the run's parameters. A fatal
answer (401, 403, 404, unknown provider, a rejected parameter, nothing listening after the
retries) raises `ExecutorFatal`, so `w4s eval|optimize|collect|sweep` stop with one line
before Ray starts and before the meta-agent is asked for anything. Returns what the run
records about its executor (`ExecutorClient.describe()`: endpoint, price model, simulated?).
It also pins the URL it checked into the config (`executor.api_base`, when the config left it
null and the provider's URL variable supplied one), so every worker calls that URL even where
its environment differs (a Ray cluster's nodes).

The call costs what a dozen tokens cost at the model's price and is not counted in the run's
dollars or budget. Not done: checking the meta-agent endpoint the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

from w4s_ray.config import CacheConfig
from w4s_ray.executor.client import ExecutorClient


def check_executor(cfg: Any) -> dict:
    """The preflight of `cfg` (an ExecutorConfig); see the module docstring."""
    probe_cfg = cfg.model_copy(update={"cache": CacheConfig(enabled=False)})
    with ExecutorClient(probe_cfg) as client:
        info = asyncio.run(client.preflight())
        if cfg.api_base is None and client.endpoint.api_base:
            cfg.api_base = client.endpoint.api_base
    return info


def simulated_note(info: dict | None) -> str:
    """The suffix every console line of a simulated run carries ("" for a real executor)."""
    if info and info.get("simulated"):
        return f" [simulated executor: {info.get('model')}]"
    return ""
