"""Load: every benchmark (eleven today) at 256 executor calls in flight against the simulator
for W4S_LOAD_SECONDS (default 90, which keeps CI short; 180-600 for a longer soak): no errors,
and the driver's and every evaluator actor's memory is flat after warm-up.

Four evaluator actors x 64 calls in flight each = 256; the simulator answers after a fixed
latency (W4S_LOAD_LATENCY_MS, default 2000), so by Little's law the mean number of calls in
flight at the simulator is calls/s x latency; the test also samples it from the simulator's
/stats (requests started minus completed). Each batch is one workflow making 6 sequential
executor calls per item on the first 24 validation items of every benchmark (264 items);
two batches are kept outstanding (a new sample seed each) until the time is up. Warm-up: every
actor has loaded every benchmark and two batches are done. Figures (RSS at warm-up and at the
end, in-flight, calls/s) are printed and written to load_report.md in the test's tmp dir;
docs/RELIABILITY.md quotes a run.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from w4s_ray.benchmarks import list_benchmarks
from w4s_ray.config import load_config
from w4s_ray.workflow.evaluate import EvalRequest

ALL = list_benchmarks()  # every registered benchmark (the eleven of W4S today)
SECONDS = float(os.environ.get("W4S_LOAD_SECONDS", "90"))
LATENCY_MS = float(os.environ.get("W4S_LOAD_LATENCY_MS", "2000"))
ITEMS = 24

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(int(SECONDS) + 1200)]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _bounded(warm: float, end: float) -> bool:
    return end <= warm * 1.15 + 50.0


# Several sequential calls per item, so an evaluation holds its calls in flight much longer
# than its sandbox start-up and scoring take (otherwise CPU, not the pool, sets the pace).
LOAD_WORKFLOW = """
def solver(agent, task):
    answer = ""
    for step in range(STEPS):
        r = agent.call_json_format_llm(
            messages=[{"role": "user", "content": f"# Your Task:\\n{task}\\n(step {step})"}],
            temperature=0.0, return_dict_keys=["reasoning", "answer"],
            instructions="Reason step by step.")
        answer = r[0]["answer"]
    return {"answer": answer}
""".replace("STEPS", "6")


def test_all_benchmarks_256_in_flight_memory_flat(ray_session, data_dir, tmp_path):
    import asyncio

    import ray

    from w4s_ray.config import SimConfig
    from w4s_ray.executor.sim.launch import start_sim
    from w4s_ray.runtime.evaluators import EvaluatorPool

    sim = start_sim(SimConfig(latency="fixed", latency_ms=LATENCY_MS), data_dir, port=0)
    pool = None
    samples: list[int] = []
    stop = threading.Event()

    def sample_in_flight():
        while not stop.wait(1.0):
            try:
                st = sim.stats()
                samples.append(int(st.get("requests", 0)) - int(st.get("completions", 0))
                               - int(st.get("status_400", 0)))
            except Exception:  # noqa: BLE001 - a missed sample is not a failure
                pass

    def batch(k: int) -> list[EvalRequest]:
        return [EvalRequest(code=LOAD_WORKFLOW, benchmark=b, split="valid", limit=ITEMS, seed=k,
                            tag=f"load-{b}-{k}") for b in ALL]

    async def drive(pids: list[int]) -> dict:
        """Keep two batches (2 x 264 items x 6 calls) outstanding until the time is up."""
        t0 = time.monotonic()
        out = {"batches": 0, "items": 0, "errors": [], "warm": None}
        pending: set = set()
        submitted = 0
        while True:
            while len(pending) < 2 and time.monotonic() - t0 < SECONDS:
                pending.add(asyncio.ensure_future(pool.gather(batch(submitted))))
                submitted += 1
            if not pending:
                break
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                out["batches"] += 1
                for r in fut.result():
                    out["items"] += r.n
                    if r.error or r.errors:
                        out["errors"].append((r.benchmark, r.error, r.errors))
            if out["warm"] is None and out["batches"] >= 2:
                out["warm"] = {"driver": _rss_mb(os.getpid()), **{p: _rss_mb(p) for p in pids}}
                out["t_warm"] = time.monotonic()
                out["calls0"] = sum(s["calls"] for s in await asyncio.gather(
                    *[a.stats.remote() for a in pool.actors]))
        out["end"] = {"driver": _rss_mb(os.getpid()), **{p: _rss_mb(p) for p in pids}}
        out["calls"] = sum(s["calls"] for s in await asyncio.gather(
            *[a.stats.remote() for a in pool.actors]))
        out["wall"] = time.monotonic() - out["t_warm"]
        return out

    try:
        cfg = load_config(None, [
            f"executor.api_base={sim.url}", "executor.cache.enabled=false",
            "executor.max_concurrency=64", "eval.num_evaluators=4",
            "eval.max_inflight_per_evaluator=64", "eval.actor_num_cpus=0.25",
            "sandbox.item_timeout_s=600", "sandbox.workflow_timeout_s=3000",
        ])
        pool = EvaluatorPool(cfg)
        pids = ray.get([a.pid.remote() for a in pool.actors])
        # Every actor loads every benchmark (lazily, tens of MB for the big ones) before the
        # warm-up figure is taken: loading data is not growth.
        ray.get([a.evaluate.remote(EvalRequest(code=LOAD_WORKFLOW, benchmark=b, limit=1,
                                               tag="prewarm"))
                 for a in pool.actors for b in ALL])
        sampler = threading.Thread(target=sample_in_flight, daemon=True)
        sampler.start()
        res = asyncio.run(drive(pids))
    finally:
        stop.set()
        if pool is not None:
            pool.shutdown()
        sim.stop()

    warm, end = res["warm"], res["end"]
    rate = (res["calls"] - res["calls0"]) / res["wall"]
    steady = samples[len(samples) // 5:] or [0]
    median = sorted(steady)[len(steady) // 2]
    report = [
        "| process | RSS after warm-up (MB) | RSS at end (MB) | growth |",
        "| --- | --- | --- | --- |",
        *[f"| {'driver' if k == 'driver' else f'evaluator pid {k}'} | {warm[k]:.0f} | "
          f"{end[k]:.0f} | {end[k] - warm[k]:+.0f} MB |" for k in warm],
        "",
        f"benchmarks {len(ALL)}, batches {res['batches']}, items {res['items']}, executor calls "
        f"{res['calls']}, {SECONDS:.0f} s requested, latency {LATENCY_MS:.0f} ms, steady-state "
        f"calls/s {rate:.1f}, Little's-law in flight {rate * LATENCY_MS / 1000:.0f}, sampled "
        f"in flight median {median} max {max(steady)}, errors {len(res['errors'])}",
    ]
    text = "\n".join(report)
    (tmp_path / "load_report.md").write_text(text + "\n")
    print("\n" + text)
    assert res["errors"] == []
    assert max(steady) >= 200, steady  # the pool really reaches ~256 calls in flight
    for k in warm:
        assert _bounded(warm[k], end[k]), (k, warm[k], end[k])
