"""Bench: peak memory of the driver and of one evaluator actor during P1 at concurrency 256.

Workload: the P1 batch (seed workflows `cot` and `cot_sc` of gsm8k, svamp, mmlu_pro and drop:
8 candidates x `items` validation items) on ONE evaluator actor that keeps 256 executor calls
in flight (`eval.max_inflight_per_evaluator=256`, `executor.max_concurrency=256`), against the
simulator with a fixed latency, completion cache off.

A psutil thread samples resident memory every 50 ms of: the driver process alone (it only
submits requests and gathers results), the actor process alone (its event loop, executor
client, benchmarks and in-flight calls), and the actor with its children (plus one sandbox
child per running candidate). The actor's pid comes from `os.getpid()` inside it. Reported:
peaks, the actor's resident memory before the batch, and the growth per in-flight call.
No targets: these are figures to size nodes with (docs/PERFORMANCE.md).

    python bench/bench_memory.py [--items 128] [--latency-ms 1000] [--inflight 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

BENCHMARKS = ("gsm8k", "svamp", "mmlu_pro", "drop")
SEEDS = ("cot", "cot_sc")


def run(items: int = 128, latency_ms: float = 1000.0, inflight: int = 256) -> list[dict]:
    import ray

    from w4s_ray.config import load_config
    from w4s_ray.runtime.evaluators import EvaluatorPool
    from w4s_ray.runtime.ray_init import init_ray

    reqs = common.seed_requests(BENCHMARKS, SEEDS, items)
    started = not ray.is_initialized()
    sim = common.fixed_sim(latency_ms)
    pool = None
    try:
        cfg = load_config(None, [
            f"executor.api_base={sim.url}", "executor.cache.enabled=false",
            "eval.num_evaluators=1", f"eval.max_inflight_per_evaluator={inflight}",
            f"executor.max_concurrency={inflight}", "executor.timeout_s=120"])
        init_ray(cfg.ray)
        pool = EvaluatorPool(cfg)
        common.warm_pool(pool, BENCHMARKS)
        actor_pid = ray.get(pool.actors[0].pid.remote(), timeout=60)
        idle = common.RssSampler({"actor": actor_pid}, children=False)
        idle.sample()
        driver = common.RssSampler({"driver": os.getpid()}, children=False)
        tree = common.RssSampler({"actor_tree": actor_pid, "sim": sim.proc.pid})
        with driver, tree, common.RssSampler({"actor": actor_pid}, children=False) as actor:
            t0 = time.perf_counter()
            results = pool.evaluate(reqs)
            wall = time.perf_counter() - t0
    finally:
        if pool is not None:
            pool.shutdown()
        sim.stop()
        if started:
            ray.shutdown()

    calls = sum(r.calls for r in results)
    errors = sum(sum(r.errors.values()) for r in results)
    if errors > 0.1 * max(1, sum(r.n for r in results)):
        raise RuntimeError(f"{errors} item errors: the batch did not really run")
    mib = {**driver.peaks_mib, **tree.peaks_mib, **actor.peaks_mib}
    idle_mib = idle.peaks_mib["actor"]
    per_call_kib = round((mib["actor"] - idle_mib) * 1024 / inflight, 1)
    params = {"items": items, "candidates": len(reqs), "inflight": inflight,
              "latency_ms": latency_ms, "calls": calls, "item_errors": errors,
              "wall_s": round(wall, 2), "ideal_s": round(calls * latency_ms / 1000 / inflight, 2),
              "samples": actor.samples, "actor_idle_mib": idle_mib, "sim_peak_mib": mib["sim"]}
    return [
        common.row("mem_driver_peak_mib", mib["driver"], None, "MiB RSS (driver process)",
                   params),
        common.row("mem_evaluator_actor_peak_mib", mib["actor"], None,
                   "MiB RSS (one evaluator actor process)", params),
        common.row("mem_evaluator_actor_with_sandboxes_peak_mib", mib["actor_tree"], None,
                   "MiB RSS (actor + its sandbox children)", params),
        common.row("mem_actor_growth_per_inflight_call_kib", per_call_kib, None,
                   "KiB RSS per call in flight (actor peak - idle) / in-flight", params),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=128)
    ap.add_argument("--latency-ms", type=float, default=1000.0)
    ap.add_argument("--inflight", type=int, default=256)
    a = ap.parse_args()
    rows = run(a.items, a.latency_ms, a.inflight)
    print(common.markdown_table(rows))
    print(json.dumps(rows[0]["params"], indent=1))


if __name__ == "__main__":
    main()
