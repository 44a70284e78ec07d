"""Bench: executor calls of one W4S turn with cache + candidate racing vs a plain evaluation.

Workload: m candidates on gsm8k validation against the simulated executor, where candidates
differ clearly: one chain-of-thought workflow (the benchmark's `cot` seed) and m-1 workflows
that ask the executor the same question but answer a constant (accuracy ~0). Both sides run
on the same Ray evaluator pool code, side by side in one process:

- plain: every candidate on every validation item, executor cache OFF (what the W4S code does);
- cache + racing: `rlao.racing.race` over slices 0.25/0.5/1.0 at 95% (Wilson), cache ON (a
  fresh cache file, so hits only come from repeats inside this run).

Value: real executor API calls (the pool's `api_calls`) of cache+racing / plain, reported only
when both select the same workflow (target <= 0.5).

    python bench/bench_racing.py [--items 64] [--candidates 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Like the Makefile and tests: the shared benchmark data next to the checkout, unless set.
os.environ.setdefault("W4S_DATA_DIR",
                      str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))

CONSTANT = '''def solver(agent, task):
    replies = agent.call_llm(messages=[{"role": "user", "content": task}], temperature=0.0)
    # ignores the model and answers a constant: a clearly worse candidate
    return {"answer": "-{k}"}
'''


def _api_calls(evaluator) -> int:
    return sum(int(s.get("api_calls", 0)) for s in evaluator.stats())


def run(items: int = 64, candidates: int = 5, seed: int = 0) -> list[dict]:
    import ray

    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.config import load_config
    from w4s_ray.executor.sim.launch import start_sim
    from w4s_ray.rlao import mdp
    from w4s_ray.rlao.evaluation import EvalRequest
    from w4s_ray.rlao.racing import race
    from w4s_ray.runtime.evaluators import EvaluatorPool
    from w4s_ray.runtime.ray_init import init_ray

    base = load_config(None, [f"eval.limit={items}", f"seed={seed}"])
    bm = get_benchmark("gsm8k", data_dir=base.data_dir())
    seeds = bm.seed_workflows()
    good = seeds.get("cot") or next(iter(seeds.values()))
    codes = [CONSTANT.replace("{k}", str(k + 1)) for k in range(candidates - 1)]
    codes.insert(candidates // 2, good)  # the good one is not simply first
    slices = base.rlao.racing.slices
    conf = base.rlao.racing.confidence

    started = not ray.is_initialized()
    tmp = tempfile.mkdtemp(prefix="w4s-bench-racing-")
    sim = start_sim(base.sim.model_copy(update={"latency": "none"}), base.data_dir())
    try:
        init_ray(base.ray)
        common = [f"eval.limit={items}", f"executor.api_base={sim.url}", "eval.num_evaluators=2"]
        plain_cfg = load_config(None, common + ["executor.cache.enabled=false"])
        race_cfg = load_config(None, common + [f"executor.cache.path={tmp}/cache.sqlite"])

        plain_ev = EvaluatorPool(plain_cfg)
        try:
            plain = plain_ev.evaluate([EvalRequest(c, "gsm8k", "valid") for c in codes])
            plain_calls = _api_calls(plain_ev)
        finally:
            plain_ev.close()
        race_ev = EvaluatorPool(race_cfg)
        try:
            raced = race(race_ev, codes, "gsm8k", fractions=slices, confidence=conf)
            race_calls = _api_calls(race_ev)
        finally:
            race_ev.close()
    finally:
        sim.stop()
        if started:
            ray.shutdown()

    def pick(outs, stopped):
        cands = [mdp.Candidate(i, "", codes[i], o.accuracy_or_none, "", o.error, s)
                 for i, (o, s) in enumerate(zip(outs, stopped, strict=True))]
        return mdp.choose(cands)

    plain_pick = pick(plain, [False] * len(codes))
    race_pick = pick([r.outcome for r in raced], [r.stopped for r in raced])
    same = plain_pick == race_pick
    params = {"items": items, "candidates": candidates, "slices": slices, "confidence": conf,
              "plain_api_calls": plain_calls, "racing_api_calls": race_calls,
              "plain_pick": plain_pick, "racing_pick": race_pick,
              "stopped": [r.stopped for r in raced],
              "plain_accuracy": [o.accuracy for o in plain],
              "racing_accuracy": [r.outcome.accuracy for r in raced]}
    return [{
        "name": "racing_executor_calls_ratio",
        "value": (race_calls / plain_calls) if (same and plain_calls) else None,
        "target": 0.5,
        "unit": "ratio (cache+racing / plain executor API calls, same selected workflow)",
        "params": params,
    }]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--candidates", type=int, default=5)
    a = ap.parse_args()
    for row in run(a.items, a.candidates):
        print(json.dumps(row))
