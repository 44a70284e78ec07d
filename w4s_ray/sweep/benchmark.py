"""One benchmark of a sweep: seed baselines on test, then W4S optimization (plain code, no Ray).

1. Baselines: every seed workflow the benchmark carries (CoT, CoT-SC, code generation or
   test-driven repair) is evaluated on the test items in ONE evaluator call and stored in
   `baselines.json`. They are reported only; no number from test ever reaches the meta-agent.
   Stored baselines are reused on resume.
2. Optimization: `w4s_ray.rlao.optimize.optimize` in the benchmark's run directory (the same code
   as `w4s optimize`): turns selected on validation only, then the best workflow once on test.
   The final test items are computed once and shared by both steps; the baseline numbers go
   into `final.json` as the seed workflows' test metrics, so optimize evaluates nothing twice
   and writes `final.json` and the benchmark's report.md once. With `sweep.baselines: false`,
   `rlao.report_seed_test` decides.

Errors propagate (the Ray fan-out turns them into a FAILED line for this benchmark only).
"""

from __future__ import annotations

import time

from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao.evaluation import EvalRequest, Evaluator
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.optimize import final_test_ids, optimize
from w4s_ray.sweep.layout import SweepLayout
from w4s_ray.utils.io import atomic_write_json


def evaluate_baselines(cfg, spec: TaskSpec, evaluator: Evaluator,
                       ids: list[str] | None) -> dict:
    """All seed workflows on the test items `ids` in one concurrent evaluator call."""
    t0 = time.monotonic()
    names = list(spec.seed_workflows)
    jobs = [EvalRequest(spec.seed_workflows[n], spec.name, "test", item_ids=ids,
                        tag=f"baseline:{n}") for n in names]
    outs = evaluator.evaluate(jobs) if jobs else []
    per = {
        n: {"test_accuracy": o.accuracy_or_none, "test_n": o.n, "error": o.error,
            "calls": o.calls, "cost_usd": o.cost_usd, "cached_usd": o.cached_usd}
        for n, o in zip(names, outs, strict=True)
    }
    return {
        "benchmark": spec.name, "split": "test", "test_limit": cfg.rlao.test_limit,
        "baselines": per, "cost_usd": sum(o.cost_usd for o in outs),
        "cached_usd": sum(o.cached_usd for o in outs),
        "calls": sum(o.calls for o in outs), "wall_s": round(time.monotonic() - t0, 2),
    }


def run_benchmark(cfg, spec: TaskSpec, layout: SweepLayout, evaluator: Evaluator,
                  meta_agent: MetaAgent, *, resume: bool, executor: dict | None = None) -> dict:
    """Baselines (unless stored or disabled), then optimize; returns a summary dict.
    `executor`: the preflight's description of the executor, recorded in the run dir."""
    t0 = time.monotonic()
    rd = layout.bench(spec.name)
    rd.path.mkdir(parents=True, exist_ok=True)
    rd.error_log.unlink(missing_ok=True)
    ids = final_test_ids(cfg, evaluator, spec.name)  # once, for the baselines and optimize
    baselines = None
    if cfg.sweep.baselines:
        baselines = rd.load_baselines()
        if baselines is None:
            baselines = evaluate_baselines(cfg, spec, evaluator, ids)
            atomic_write_json(rd.baselines, baselines)
    seed_test = None if baselines is None else {
        name: b["test_accuracy"] for name, b in baselines["baselines"].items()}
    final = optimize(cfg, spec, rd.path, evaluator, meta_agent, resume=resume, progress=False,
                     test_ids=ids, seed_test=seed_test, executor=executor)
    return {"benchmark": spec.name, "status": "done", "error": None,
            "wall_s": round(time.monotonic() - t0, 2),
            "test_accuracy": final.get("test_accuracy"), "dollars": final.get("dollars")}
