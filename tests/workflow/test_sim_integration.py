"""Seed workflows end to end: sandbox child -> parent -> ExecutorClient -> litellm -> HTTP ->
simulator, scored in the parent. Slow (a simulator process, real HTTP, every benchmark)."""

from __future__ import annotations

import asyncio

import pytest

from w4s_ray.benchmarks import get_benchmark, list_benchmarks
from w4s_ray.config import EvalConfig, SandboxConfig
from w4s_ray.workflow.evaluate import EvalRequest, evaluate

pytestmark = pytest.mark.slow


async def _run(code, bm, executor_cfg, limit, seed=0):
    from w4s_ray.executor.client import ExecutorClient

    with ExecutorClient(executor_cfg) as client:
        return await evaluate(EvalRequest(code=code, benchmark=bm.name, limit=limit, seed=seed),
                              bm, client, SandboxConfig(item_timeout_s=60), EvalConfig())


@pytest.mark.parametrize("name", list_benchmarks())
def test_every_seed_workflow_runs_on_the_simulator(name, data_dir, sim_executor_cfg):
    bm = get_benchmark(name, data_dir)
    seeds = bm.seed_workflows()
    assert seeds
    for seed_name, code in seeds.items():
        res = asyncio.run(_run(code, bm, sim_executor_cfg, limit=3))
        # never print items here (GPQA questions must not appear in logs)
        assert res.n == 3 and res.errors == {}, (seed_name, res.item_errors)
        assert res.calls >= 3
        # seeds share their first request (e.g. cot and test_repair): those are cache hits
        assert res.cache_hits + res.cache_misses >= 3
        assert (res.prompt_tokens > 0 and res.cost_usd > 0) or res.cache_misses == 0
        assert all(isinstance(a, str) for a in res.answers)
        assert 0.0 <= res.accuracy <= 1.0


def test_self_consistency_beats_cot_at_nonzero_temperature(data_dir, sim_executor_cfg):
    bm = get_benchmark("gsm8k", data_dir)
    seeds = bm.seed_workflows(style="w4s-ray")  # CoT at 0 (w4s style: already 0.8), normalised vote
    assert "temperature=0.0" in seeds["cot"]
    cot_sampled = seeds["cot"].replace("temperature=0.0", "temperature=0.8")
    cot = asyncio.run(_run(cot_sampled, bm, sim_executor_cfg, limit=None))
    sc = asyncio.run(_run(seeds["cot_sc"], bm, sim_executor_cfg, limit=None))
    assert cot.n == sc.n == len(bm.load("valid")) >= 200
    assert cot.errors == {} and sc.errors == {}
    # Majority voting over 5 samples lifts every item whose per-sample accuracy is > 1/2.
    assert sc.accuracy >= cot.accuracy + 0.02, (sc.accuracy, cot.accuracy)


def test_repeated_evaluation_replays_from_the_cache(data_dir, sim_executor_cfg):
    bm = get_benchmark("gsm8k", data_dir)
    code = bm.seed_workflows()["cot_sc"]
    first = asyncio.run(_run(code, bm, sim_executor_cfg, limit=5))
    second = asyncio.run(_run(code, bm, sim_executor_cfg, limit=5))
    assert second.answers == first.answers and second.scores == first.scores
    assert second.cache_hits == 25 and second.cost_usd == 0.0 and first.cache_hits == 0
