"""EvaluatorPool on Ray with the simulator: many candidates of several benchmarks, results in
request order, and an actor killed mid-evaluation loses nothing."""

from __future__ import annotations

import asyncio
import os
import re

import pytest

from w4s_ray.config import load_config
from w4s_ray.workflow.evaluate import EvalRequest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

# Several sequential executor calls per item, so an evaluation lasts long enough to be killed.
SLOW_COT = '''
def solver(agent, task):
    answer = ""
    for step in range(10):
        r = agent.call_json_format_llm(
            messages=[{"role": "user", "content": f"# Your Task:\\n{task}\\n(step {step})"}],
            temperature=0.0, return_dict_keys=["reasoning", "answer"],
            instructions="Reason step by step.")
        answer = r[0]["answer"]
    return {"answer": answer}
'''


@pytest.fixture(scope="module")
def slow_sim(data_dir):
    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim

    handle = start_sim(SimConfig(latency="fixed", latency_ms=150), data_dir, port=0)
    yield handle
    handle.stop()


def _cfg(url: str):
    return load_config(None, [f"executor.api_base={url}", "executor.cache.enabled=false",
                              "eval.num_evaluators=2", "eval.max_inflight_per_evaluator=16",
                              "sandbox.item_timeout_s=60"])


def _requests(seeds_by_bm):
    reqs = []
    for bm_name, seeds in seeds_by_bm.items():
        for name, code in seeds.items():
            reqs.append(EvalRequest(code=code, benchmark=bm_name, limit=3, tag=f"{bm_name}/{name}"))
    return reqs


def _key(r):
    return (r.benchmark, r.tag, r.item_ids, r.answers, r.scores, r.errors, r.calls)


def _orphaned_children() -> list[int]:
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            status = open(f"/proc/{d}/status").read()
        except OSError:
            continue
        ppid = int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1))
        if "sandbox/children/workflow.py" in cmd and ppid == 1:
            out.append(int(d))
    return out


def test_pool_evaluates_many_candidates_in_order(ray_session, slow_sim, data_dir):
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.runtime.evaluators import EvaluatorPool

    seeds = {n: get_benchmark(n, data_dir).seed_workflows() for n in ("gsm8k", "mmlu_pro")}
    reqs = _requests(seeds)
    with EvaluatorPool(_cfg(slow_sim.url)) as pool:
        results = pool.evaluate(reqs)
    assert [r.tag for r in results] == [q.tag for q in reqs]
    for r, q in zip(results, reqs, strict=True):
        assert r.benchmark == q.benchmark and r.n == 3 and r.errors == {}, r.item_errors


def test_killed_actor_is_replaced_and_nothing_is_lost(ray_session, slow_sim, data_dir):
    import ray

    from w4s_ray.runtime.evaluators import EvaluatorPool

    reqs = [EvalRequest(code=SLOW_COT, benchmark="gsm8k", limit=6, tag=f"c{k}")
            for k in range(4)]
    reqs += [EvalRequest(code=SLOW_COT, benchmark="svamp", limit=4, tag="s0")]
    pool = EvaluatorPool(_cfg(slow_sim.url))
    try:
        clean = pool.evaluate(reqs)

        async def killed_run():
            task = asyncio.ensure_future(pool.gather(reqs))
            await asyncio.sleep(1.0)  # under way: each item makes 10 sequential 150 ms calls
            assert not task.done()
            ray.kill(pool.actors[0], no_restart=True)
            return await asyncio.wait_for(task, 300)

        again = asyncio.run(killed_run())
        assert pool.replaced >= 1
    finally:
        pool.shutdown()
    assert [_key(r) for r in again] == [_key(r) for r in clean]
    assert all(r.errors == {} and r.n in (4, 6) for r in again)
    assert _orphaned_children() == []


def test_pool_shares_one_budget_and_rate_limit_across_actors(ray_session, slow_sim, data_dir):
    """With a budget, every actor's spend lands in one limiter: the budget is pool-wide."""
    import ray

    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.runtime.evaluators import EvaluatorPool

    seeds = {"gsm8k": get_benchmark("gsm8k", data_dir).seed_workflows()}
    cfg = _cfg(slow_sim.url).model_copy(deep=True)
    cfg.executor.budget_usd = 100.0  # far away: only the accounting is checked here
    pool = EvaluatorPool(cfg)
    try:
        limiter = pool._own_limiter
        assert limiter is not None and pool.rate_limiter is limiter
        results = pool.evaluate(_requests(seeds))
        assert len(pool.load) == 2 and all(r.errors == {} for r in results)
        spent = sum(r.cost_usd for r in results)
        assert spent > 0
        # Spend reports are fire-and-forget: wait until the limiter has them all.
        for _ in range(50):
            snap = ray.get(limiter.snapshot.remote())
            if abs(snap["spent_usd"] - spent) < 1e-9:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert snap["spent_usd"] == pytest.approx(spent, rel=1e-6)
    finally:
        pool.shutdown()
    assert pool._own_limiter is None
    # Without a budget or rate limit there is nothing to share: no extra actor.
    with EvaluatorPool(_cfg(slow_sim.url)) as plain:
        assert plain.rate_limiter is None
