"""One benchmark of a sweep: seed baselines on test, then W4S optimization (plain code, no Ray).

1. Baselines: every seed workflow the benchmark carries (CoT, CoT-SC, code generation or
   test-driven repair) is evaluated on the test items in ONE evaluator call and stored in
   `baselines.json`. They are reported only; no number from test ever reaches the meta-agent.
   Stored baselines are reused on resume.
2. Optimization: `w4s_ray.rlao.optimize.optimize` in the benchmark's run directory (the same code
   as `w4s optimize`): turns selected on validation only, then the best workflow once on test.
   Its own end-of-run seed evaluation on test is switched off when step 1 ran (same items);
   the baseline numbers are then copied into `final.json` so the benchmark's own report.md
   shows them as well. With `sweep.baselines: false`, `rlao.report_seed_test` decides.

Errors propagate (the Ray fan-out turns them into a FAILED line for this benchmark only).
"""

from __future__ import annotations

import time
from pathlib import Path

from w4s_ray.meta_agent.base import MetaAgent
from w4s_ray.rlao.evaluation import EvalRequest, Evaluator
from w4s_ray.rlao.loop import TaskSpec
from w4s_ray.rlao.optimize import final_test_ids, optimize
from w4s_ray.rlao.report import write_report
from w4s_ray.sweep.layout import SweepLayout, read_json
from w4s_ray.utils.io import atomic_write_json


def evaluate_baselines(cfg, spec: TaskSpec, evaluator: Evaluator) -> dict:
    """All seed workflows on test in one concurrent evaluator call."""
    t0 = time.monotonic()
    ids = final_test_ids(cfg, evaluator, spec.name)
    names = list(spec.seed_workflows)
    jobs = [EvalRequest(spec.seed_workflows[n], spec.name, "test", item_ids=ids,
                        tag=f"baseline:{n}") for n in names]
    outs = evaluator.evaluate(jobs) if jobs else []
    per = {
        n: {"test_accuracy": o.accuracy_or_none, "test_n": o.n, "error": o.error,
            "calls": o.calls, "cost_usd": o.cost_usd}
        for n, o in zip(names, outs, strict=True)
    }
    return {
        "benchmark": spec.name, "split": "test", "test_limit": cfg.rlao.test_limit,
        "baselines": per, "cost_usd": sum(o.cost_usd for o in outs),
        "calls": sum(o.calls for o in outs), "wall_s": round(time.monotonic() - t0, 2),
    }


def run_benchmark(cfg, spec: TaskSpec, layout: SweepLayout, evaluator: Evaluator,
                  meta_agent: MetaAgent, *, resume: bool) -> dict:
    """Baselines (unless stored or disabled), then optimize; returns a summary dict."""

    t0 = time.monotonic()
    bench_dir = layout.bench_dir(spec.name)
    bench_dir.mkdir(parents=True, exist_ok=True)
    layout.error_log(spec.name).unlink(missing_ok=True)
    baselines = None
    if cfg.sweep.baselines:
        baselines = read_json(layout.baselines(spec.name))
        if baselines is None:
            baselines = evaluate_baselines(cfg, spec, evaluator)
            atomic_write_json(layout.baselines(spec.name), baselines)

    opt_cfg = cfg.model_copy(deep=True)
    if baselines is not None:  # already on test, on the same items: don't pay twice
        opt_cfg.rlao.report_seed_test = False
    final = optimize(opt_cfg, spec, bench_dir, evaluator, meta_agent, resume=resume,
                     progress=False)
    if baselines is not None:
        _merge_baselines(final, baselines)
        atomic_write_json(layout.final(spec.name), final)
        write_report(bench_dir)
    return {"benchmark": spec.name, "status": "done", "error": None,
            "wall_s": round(time.monotonic() - t0, 2),
            "test_accuracy": final.get("test_accuracy"), "dollars": final.get("dollars")}


def _merge_baselines(final: dict, baselines: dict) -> None:
    seeds = final.setdefault("seed_baselines", {})
    for name, b in baselines["baselines"].items():
        entry = seeds.setdefault(name, {"valid_accuracy": None})
        entry["test_accuracy"] = b["test_accuracy"]


def bench_dir_has_work(path: Path) -> bool:
    """Anything a fresh sweep would overwrite: a run, stored baselines or a final result."""
    return path.is_dir() and any(
        (path / f).exists() for f in ("config.yaml", "baselines.json", "final.json", "trajectories")
    )
