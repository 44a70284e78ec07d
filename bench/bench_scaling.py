"""Bench: how evaluation cost grows, and what one executor call costs in CPU.

1. Doubling. A base batch (seed workflow `cot` of gsm8k and svamp, `items` validation items:
   2 candidates) is evaluated in-process at a FIXED bound of `concurrency` executor calls in
   flight on the simulator with a fixed latency; then the same with twice the candidates
   (`cot` + `cot_sc`), twice the items, and twice the benchmarks (+ mmlu_pro, drop). Each
   doubles the executor calls. Reported per variant: wall / base wall (linear in work is 2.0;
   target <= 2.2) and peak resident memory of this process with its sandbox children, and the
   growth of this process's own RSS per call in flight (should stay flat: memory is bounded by
   calls in flight and running candidates, not by the amount of work).
2. CPU per executor call, measured with psutil CPU times (robust to other load on the box):
   our `ExecutorClient` (litellm underneath), a bare aiohttp POST of the same request, and the
   simulator's side. docs/PERFORMANCE.md turns these into evaluator actors per node.

    python bench/bench_scaling.py [--items 64] [--concurrency 64] [--latency-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

VARIANTS = {
    "base": (("gsm8k", "svamp"), ("cot",), 1),
    "candidates_x2": (("gsm8k", "svamp"), ("cot", "cot_sc"), 1),
    "items_x2": (("gsm8k", "svamp"), ("cot",), 2),
    "benchmarks_x2": (("gsm8k", "svamp", "mmlu_pro", "drop"), ("cot",), 1),
}


def _cpu_s(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


async def _cpu_per_call(client, sim, n: int, concurrency: int) -> dict[str, float]:
    """CPU ms per call: our client, a bare aiohttp POST, and the simulator serving each."""
    import aiohttp

    me = os.getpid()
    sem = asyncio.Semaphore(concurrency)

    def msgs(i: int) -> list[dict]:
        return [{"role": "system", "content": "You are a helpful math expert."},
                {"role": "user", "content": f"# Your Task:\nWhat is 2 + {i}? (cpu probe)"}]

    async def bounded(coro_fn, i):
        async with sem:
            return await coro_fn(i)

    async def measure(coro_fn, offset: int) -> tuple[float, float]:
        await bounded(coro_fn, offset - 1)  # connection and first-use costs
        c0, s0 = _cpu_s(me), _cpu_s(sim.proc.pid)
        await asyncio.gather(*(bounded(coro_fn, offset + i) for i in range(n)))
        return (_cpu_s(me) - c0) * 1000 / n, (_cpu_s(sim.proc.pid) - s0) * 1000 / n

    ours, sim_ours = await measure(lambda i: client.chat(msgs(i)), 0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def raw(i):
            async with s.post(sim.url + "/chat/completions",
                              json={"model": "sim-gpt-4o-mini", "messages": msgs(i)}) as r:
                return await r.json()

        bare, sim_bare = await measure(raw, 10 * n)
    return {"executor_client": ours, "bare_aiohttp": bare, "sim": (sim_ours + sim_bare) / 2}


def run(items: int = 64, concurrency: int = 64, latency_ms: float = 1000.0,
        cpu_probe_calls: int = 512) -> list[dict]:
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.config import CacheConfig, EvalConfig, ExecutorConfig, SandboxConfig
    from w4s_ray.executor.client import ExecutorClient
    from w4s_ray.workflow.evaluate import EvalRequest, evaluate

    bms = {n: get_benchmark(n) for v in VARIANTS.values() for n in v[0]}
    for bm in bms.values():
        bm.load("valid")
    sandbox = SandboxConfig(item_timeout_s=600, workflow_timeout_s=3600)
    ev = EvalConfig(max_inflight_per_evaluator=concurrency)
    sim = common.fixed_sim(latency_ms)
    measured: dict[str, dict] = {}
    try:
        ecfg = ExecutorConfig(api_base=sim.url, cache=CacheConfig(enabled=False),
                              max_concurrency=concurrency, timeout_s=120)

        async def main() -> dict[str, float]:
            with ExecutorClient(ecfg) as client:
                await client.chat([{"role": "user", "content": "warm up"}])
                for name in bms:  # sandbox isolation probe, data, imports
                    await evaluate(EvalRequest(code=common.NOOP_WORKFLOW, benchmark=name,
                                               limit=1), bms[name], client, sandbox, ev)
                for label, (benches, seeds, mult) in VARIANTS.items():
                    reqs = common.seed_requests(benches, seeds, items * mult)
                    limiter = asyncio.Semaphore(concurrency)
                    before = common.tree_rss(os.getpid())
                    with common.RssSampler({"tree": os.getpid()}) as tree, \
                            common.RssSampler({"self": os.getpid()}, children=False) as own:
                        t0 = time.perf_counter()
                        res = await asyncio.gather(*(
                            evaluate(r, bms[r.benchmark], client, sandbox, ev,
                                     call_limiter=limiter) for r in reqs))
                        wall = time.perf_counter() - t0
                    errors = sum(sum(r.errors.values()) for r in res)
                    measured[label] = {
                        "candidates": len(reqs), "items": items * mult,
                        "benchmarks": len(benches), "calls": sum(r.calls for r in res),
                        "item_errors": errors, "wall_s": round(wall, 2),
                        "peak_tree_mib": tree.peaks_mib["tree"],
                        "peak_self_mib": own.peaks_mib["self"],
                        "self_growth_kib_per_inflight": round(
                            max(0, own.peaks["self"] - before) / 1024 / concurrency, 1),
                    }
                    if errors > 0.1 * sum(r.n for r in res):
                        raise RuntimeError(f"{label}: {errors} item errors")
                return await _cpu_per_call(client, sim, cpu_probe_calls, concurrency)

        cpu = asyncio.run(main())
    finally:
        sim.stop()

    base = measured["base"]
    params = {"concurrency": concurrency, "latency_ms": latency_ms, "variants": measured}
    rows = []
    for label in ("candidates_x2", "items_x2", "benchmarks_x2"):
        m = measured[label]
        rows.append(common.row(f"scaling_wall_{label}_over_base",
                               round(m["wall_s"] / base["wall_s"], 3), 2.2,
                               "ratio; work doubled, linear = 2.0 (lower is better)",
                               {**params, "calls_ratio": round(m["calls"] / base["calls"], 2)}))
        rows.append(common.row(f"scaling_peak_mem_{label}_over_base",
                               round(m["peak_tree_mib"] / base["peak_tree_mib"], 3), None,
                               "ratio of peak RSS incl. sandbox children", params))
    rows += [
        common.row("cpu_ms_per_call_executor_client", round(cpu["executor_client"], 3), None,
                   "CPU ms per executor call in the calling process (litellm + ours)",
                   {**params, "probe_calls": cpu_probe_calls}),
        common.row("cpu_ms_per_call_bare_aiohttp", round(cpu["bare_aiohttp"], 3), None,
                   "CPU ms per call, the same request by a bare aiohttp POST",
                   {"probe_calls": cpu_probe_calls}),
        common.row("cpu_ms_per_call_simulator", round(cpu["sim"], 3), None,
                   "CPU ms per call in the simulator", {"probe_calls": cpu_probe_calls}),
    ]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency-ms", type=float, default=1000.0)
    a = ap.parse_args()
    rows = run(a.items, a.concurrency, a.latency_ms)
    print(common.markdown_table(rows))
    print("| variant | candidates | items | benchmarks | calls | wall s | peak MiB (tree) "
          "| own RSS growth KiB / call in flight |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, m in rows[0]["params"]["variants"].items():
        print(f"| {k} | {m['candidates']} | {m['items']} | {m['benchmarks']} | {m['calls']} | "
              f"{m['wall_s']} | {m['peak_tree_mib']} | {m['self_growth_kib_per_inflight']} |")
    print(json.dumps(rows[0]["params"], indent=1))


if __name__ == "__main__":
    main()
