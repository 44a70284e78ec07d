"""The Ray actor that makes the rate limit and the spend total hold across workers."""

from __future__ import annotations

import asyncio
import time

import pytest

from w4s_ray.config import CacheConfig, ExecutorConfig

pytestmark = pytest.mark.ray


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_tasks_share_the_global_rate(ray_session, sim_server, tmp_path):
    ray = ray_session
    from w4s_ray.runtime.rate_limiter import get_rate_limiter

    cfg = ExecutorConfig(api_base=sim_server.url, requests_per_minute=600,  # 10 per 1 s window
                         rate_limit_window_s=1.0,
                         cache=CacheConfig(enabled=False), budget_usd=1.0)
    limiter = get_rate_limiter(cfg, name=f"test-limiter-{time.time_ns()}")

    @ray.remote(num_cpus=0)
    def worker(cfg_json: str, handle, tag: str, calls: int) -> tuple[float, float, float]:
        from w4s_ray.config import ExecutorConfig
        from w4s_ray.executor.client import ExecutorClient
        from w4s_ray.runtime.rate_limiter import SharedRateLimiter

        client = ExecutorClient(ExecutorConfig.model_validate_json(cfg_json),
                                rate_limiter=SharedRateLimiter(handle))

        async def run():
            t0 = time.monotonic()
            await asyncio.gather(*[client.chat([{"role": "user", "content": f"{tag} {i}"}])
                                   for i in range(calls)])
            return t0, time.monotonic()

        t0, t1 = asyncio.run(run())
        return t0, t1, client.spent_usd()

    t_start = time.monotonic()
    out = ray.get([worker.remote(cfg.model_dump_json(), limiter, tag, 20) for tag in ("a", "b")],
                  timeout=150)
    elapsed = time.monotonic() - t_start
    # 40 requests at 10 per 1 s window (+ the guard), one grant each: at least 3 windows
    # (~3 s). Two independent limiters would let both finish in ~1 s.
    assert elapsed >= 3.0, elapsed
    spent = sum(o[2] for o in out)
    for _ in range(50):  # settles are fire-and-forget: wait until the actor has them all
        snap = ray.get(limiter.snapshot.remote(), timeout=30)
        if abs(snap["spent_usd"] - spent) < 1e-12:
            break
        time.sleep(0.1)
    assert snap["granted_requests"] >= 40
    assert snap["spent_usd"] == pytest.approx(spent, rel=1e-9)  # the run total adds both workers
    ray.kill(limiter)


@pytest.mark.timeout(120)
def test_run_budget_is_shared(ray_session, sim_server, tmp_path):
    from w4s_ray.errors import BudgetExceeded
    from w4s_ray.executor.client import ExecutorClient
    from w4s_ray.runtime.rate_limiter import SharedRateLimiter, get_rate_limiter

    cfg = ExecutorConfig(api_base=sim_server.url, cache=CacheConfig(enabled=False),
                         budget_usd=0.0001, max_concurrency=1)
    limiter = get_rate_limiter(cfg, name=f"test-budget-{time.time_ns()}")
    ray_session.get(limiter.settle.remote(None, None, 0.0002), timeout=30)  # another worker spent it all
    client = ExecutorClient(cfg, rate_limiter=SharedRateLimiter(limiter))

    before = sim_server.stats().get("requests", 0)
    with pytest.raises(BudgetExceeded):
        asyncio.run(client.chat([{"role": "user", "content": "over budget"}]))
    assert sim_server.stats().get("requests", 0) == before  # refused before any HTTP call
    ray_session.kill(limiter)
