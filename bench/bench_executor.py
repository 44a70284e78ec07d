"""Executor throughput and cache savings, measured side by side against the simulator.

1. Wall time of N calls at concurrency C through `ExecutorClient` (litellm -> HTTP) against
   the simulator with a fixed latency L, divided by the ideal N * L / C (target <= 1.10):
   how much the client's own overhead (litellm, the OpenAI SDK, our cache and bookkeeping)
   costs on top of the model's latency.
   The same calls through bare `litellm.acompletion` are timed in the same run, so the
   client's own share (target <= 1.10 over bare litellm) is visible apart from litellm's and
   from other load on the machine.
2. A repeated evaluation: the same N prompts again with the cache on; the fraction of calls
   the cache saved (target 1.0) and the dollars it saved.

Run: `python bench/bench_executor.py [--n 640] [--concurrency 64] [--latency-ms 200]`.
`run()` returns the measurements as a list of dicts for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w4s_ray.env import apply_offline_defaults  # noqa: E402

apply_offline_defaults()


def run(n: int = 640, concurrency: int = 64, latency_ms: float = 200.0) -> list[dict]:
    from w4s_ray.config import CacheConfig, ExecutorConfig, SimConfig
    from w4s_ray.executor.client import ExecutorClient, _io_loop
    from w4s_ray.executor.sim.launch import start_sim

    params = {"n": n, "concurrency": concurrency, "latency_ms": latency_ms}
    with tempfile.TemporaryDirectory() as tmp, \
            start_sim(SimConfig(latency="fixed", latency_ms=latency_ms)) as sim:
        cfg = ExecutorConfig(api_base=sim.url, max_concurrency=concurrency,
                             cache=CacheConfig(path=str(Path(tmp) / "cache.sqlite")))
        client = ExecutorClient(cfg)
        prompts = [f"Bench prompt {i}: summarise why caching helps." for i in range(n)]

        async def batch(tag: str) -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*[client.chat([{"role": "user", "content": p}], tags={"pass": tag})
                                   for p in prompts])
            return time.perf_counter() - t0

        async def raw_litellm() -> float:
            # The same calls through bare litellm: separates our layer's cost from litellm's
            # and from the load on this (shared) machine.
            import litellm

            sem = asyncio.Semaphore(concurrency)

            async def one(i: int):
                async with sem:
                    return await litellm.acompletion(
                        model=cfg.model, api_base=sim.url, api_key="none", num_retries=0,
                        max_retries=0, messages=[{"role": "user", "content": f"raw {i}"}])

            t0 = time.perf_counter()
            await asyncio.gather(*[one(i) for i in range(n)])
            return time.perf_counter() - t0

        async def main() -> tuple[float, float, float, int]:
            await client.chat([{"role": "user", "content": "warm-up"}])  # imports, connections
            before = sim.stats().get("requests", 0)
            first = await batch("first")
            mid = sim.stats().get("requests", 0)
            repeat = await batch("repeat")
            repeat_calls = sim.stats().get("requests", 0) - mid
            assert mid - before == n
            # On the client's I/O loop, like the client's own calls (litellm binds to a loop).
            raw = asyncio.run_coroutine_threadsafe(raw_litellm(), _io_loop())
            return first, repeat, await asyncio.wrap_future(raw), repeat_calls

        wall, wall_repeat, wall_raw, repeat_calls = asyncio.run(main())
        stats = client.stats()
    ideal = n * latency_ms / 1000.0 / concurrency
    saved_fraction = 1.0 - repeat_calls / n
    return [
        {"name": "executor_wall_over_ideal", "value": round(wall / ideal, 3), "target": 1.10,
         "unit": "ratio", "params": {**params, "wall_s": round(wall, 3), "ideal_s": round(ideal, 3)}},
        {"name": "executor_client_over_raw_litellm", "value": round(wall / wall_raw, 3),
         "target": 1.10, "unit": "ratio",
         "params": {**params, "raw_litellm_wall_s": round(wall_raw, 3),
                    "raw_litellm_over_ideal": round(wall_raw / ideal, 3)}},
        {"name": "executor_cache_saved_calls_fraction", "value": round(saved_fraction, 3),
         "target": 1.0, "unit": "fraction",
         "params": {**params, "repeat_http_calls": repeat_calls, "cache_hits": stats["cache_hits"],
                    "repeat_wall_s": round(wall_repeat, 3)}},
        {"name": "executor_cache_saved_usd", "value": round(stats["saved_usd"], 6), "target": None,
         "unit": "usd", "params": {**params, "spent_usd": round(stats["cost_usd"], 6)}},
    ]


def _table(rows: list[dict]) -> str:
    lines = ["| measure | value | target | unit |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['name']} | {r['value']} | {r['target'] if r['target'] is not None else '-'} | "
              f"{r['unit']} |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=640)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    a = ap.parse_args()
    results = run(a.n, a.concurrency, a.latency_ms)
    print(_table(results))
    print(json.dumps(results, indent=2))
