"""`w4s optimize`: one W4S episode on one benchmark, then the best workflow once on test
(plain code, no Ray: the evaluator and the meta-agent are passed in).

Turns are selected on validation only; `final.json` holds the best workflow by validation and
its test metric (plus the seed workflows on the same test items when
`rlao.report_seed_test`). A resumed run replays the rows of `trajectories/` (see `rlao.runs`)
and continues; a budget stop or an unreachable executor leaves the completed turns, the cost and
the report consistent on disk before the error propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import EllipsisType

from tqdm.auto import tqdm

from w4s_ray.config import ExperimentConfig
from w4s_ray.console import activity
from w4s_ray.errors import BudgetExceeded, DataError, W4SError
from w4s_ray.rlao.evaluation import EvalRequest, Evaluator
from w4s_ray.rlao.loop import Episode, TaskSpec, TurnResult
from w4s_ray.rlao.report import write_report
from w4s_ray.rlao.runs import RunDir, cost_summary, episode_id, replay_episode
from w4s_ray.utils.io import atomic_write_json, atomic_write_text
from w4s_ray.utils.stats import bootstrap_ci


def optimize(
    cfg: ExperimentConfig,
    spec: TaskSpec,
    run_dir: str | Path,
    evaluator: Evaluator,
    meta_agent,
    *,
    turns: int | None = None,
    resume: bool = False,
    progress: bool = True,
    on_turn: Callable[[TurnResult], None] | None = None,
    test_ids: list[str] | None | EllipsisType = ...,
    seed_test: dict[str, float | None] | None = None,
    executor: dict | None = None,
) -> dict:
    """`w4s optimize`: one episode, then the best workflow (by validation) once on test.

    `test_ids` are the final test items when the caller has them already (default: computed
    here, `final_test_ids`); `seed_test` are the seed workflows' test metrics on those items
    when the caller evaluated them already (a sweep's baselines): then they are not evaluated
    again, and final.json is written once, with them. `executor`: what the executor preflight
    found (`ExecutorClient.describe()`), recorded in the run dir so reports and the progress
    bar can say "simulated"."""
    t_start = time.monotonic()
    rd = RunDir(run_dir, single_episode=True)
    rd.prepare(cfg, resume)
    rd.record_executor(executor)
    turns = cfg.rlao.turns if turns is None else turns
    rows = rd.read_rows()  # before any work: a corrupt file stops us here
    eid = episode_id(spec.name, 0)
    ep = Episode.for_run(cfg, spec, eid, evaluator, meta_agent)
    seeds = rd.load_seeds(spec.name)
    if seeds is None:
        with activity(f"{spec.name}: seed workflows ({len(spec.seed_workflows)}) on validation",
                      enabled=progress):
            seeds = ep.evaluate_seeds()
        rd.save_seeds(spec.name, seeds)
    ep.start(seeds)
    best_by_turn = replay_episode(ep, rows)
    if rows:
        rd.rebuild_metrics(rows, best_by_turn)
    if rd.final.exists() and ep.state.turn >= turns:
        done = rd.load_final(torn_ok=True)  # derived state: a torn final.json is recomputed
        if isinstance(done, dict) and "test_accuracy" in done:
            write_report(rd.path)
            return done
    rd.final.unlink(missing_ok=True)  # a longer resumed run supersedes an earlier final

    sim = " (simulated executor)" if (executor or {}).get("simulated") else ""
    bar = tqdm(total=turns, initial=min(ep.state.turn, turns), desc=f"optimize {spec.name}{sim}",
               unit="turn", disable=not progress)
    try:
        while ep.state.turn < turns:
            res = ep.run_turn()
            rd.write_turn(eid, res)
            rows += res.rows
            bar.update(1)
            bar.set_postfix(best=f"{ep.state.best_accuracy:.3f}")
            if on_turn is not None:
                on_turn(res)
    except W4SError:
        # Budget spent, executor or meta-agent unreachable: completed turns are on disk; leave
        # the cost and report consistent with them, then let the CLI print the one-line error.
        atomic_write_json(rd.cost, cost_summary(rows, seeds, meta_usage=meta_agent.usage))
        write_report(rd.path)
        raise
    finally:
        bar.close()

    best = ep.state.best
    if test_ids is ...:
        test_ids = final_test_ids(cfg, evaluator, spec.name)
    final = _final_evaluation(cfg, spec, evaluator, best, seeds, rows, rd, meta_agent,
                              test_ids, seed_test, progress=progress)
    final["wall_s"] = round(time.monotonic() - t_start, 2)
    final["turns"] = ep.state.turn
    final["simulated"] = bool(executor["simulated"]) if executor else None
    atomic_write_text(rd.final_workflow, best.code if best else "")
    atomic_write_json(rd.final, final)
    write_report(rd.path)
    return final


def _final_evaluation(cfg, spec, evaluator, best, seeds, rows, rd, meta_agent, ids,
                      seed_test, *, progress: bool = False) -> dict:
    """The best workflow by validation, evaluated ONCE on test (+ seed baselines for the report)."""
    if best is None:
        raise DataError(f"{spec.name}: no workflow was evaluated; nothing to test")
    jobs = [EvalRequest(best.code, spec.name, "test", item_ids=ids, tag="final")]
    seed_jobs = seeds if cfg.rlao.report_seed_test and seed_test is None else []
    jobs += [EvalRequest(s["code"], spec.name, "test", item_ids=ids,
                         tag=f"seed-test:{s['name']}") for s in seed_jobs]
    seed_ci: dict[str, dict | None] = {}
    try:
        what = "the chosen workflow" + (f" and {len(seed_jobs)} seeds" if seed_jobs else "")
        with activity(f"{spec.name}: final test of {what}", enabled=progress):
            outs = evaluator.evaluate(jobs)
        if seed_test is None:
            seed_test = {s["name"]: o.accuracy_or_none
                         for s, o in zip(seed_jobs, outs[1:], strict=True)}
            seed_ci = {s["name"]: _ci(cfg, o) for s, o in zip(seed_jobs, outs[1:], strict=True)}
    except BudgetExceeded:
        atomic_write_json(rd.cost, cost_summary(rows, seeds, meta_usage=meta_agent.usage))
        raise
    test_usd = sum(o.cost_usd for o in outs)
    test_calls = sum(o.calls for o in outs)
    cost = cost_summary(rows, seeds, test_usd, test_calls, meta_agent.usage,
                        sum(o.cached_usd for o in outs))
    atomic_write_json(rd.cost, cost)
    final = {
        "benchmark": spec.name,
        "scoring": cfg.eval.scoring,
        "protocol": cfg.rlao.protocol,
        "best": best.name,
        "best_turn": best.turn,
        "best_candidate": best.candidate,
        "valid_accuracy": best.val_accuracy,
        "test_accuracy": outs[0].accuracy_or_none,
        "test_n": outs[0].n,
        "test_scores": list(outs[0].scores),  # per item, for confidence intervals in tables
        "test_error": outs[0].error,
        # 95% percentile-bootstrap interval of the test accuracy (upstream's method).
        "test_ci95": _ci(cfg, outs[0]),
        "dollars": cost["total_usd"],
        "cached_dollars": cost["cached_usd"],
        "executor_calls": cost["calls"],
        "seed_baselines": {
            s["name"]: {"valid_accuracy": s["val_accuracy"],
                        "test_accuracy": seed_test.get(s["name"]),
                        "test_ci95": seed_ci.get(s["name"])}
            for s in seeds
        },
        # The paper's figures for this benchmark (config `paper`), printed next to "measured".
        "paper": [f.model_dump() for f in cfg.paper if f.benchmark == spec.name],
    }
    for name, acc in seed_test.items():  # a baseline without a validation record
        final["seed_baselines"].setdefault(name, {"valid_accuracy": None, "test_accuracy": acc})
    return final


def _ci(cfg, result) -> dict | None:
    """The 95% bootstrap interval of a test result's mean score (None when it failed)."""
    if result.error or not result.scores:
        return None
    ci = bootstrap_ci(result.scores, samples=cfg.rlao.bootstrap_samples, seed=cfg.seed)
    return ci.as_dict() if ci is not None else None


def final_test_ids(cfg, evaluator: Evaluator, benchmark: str) -> list[str] | None:
    """The test items of the final evaluation and of the seed baselines: the first
    `rlao.test_limit` ids of the test split (None: all of it)."""
    if cfg.rlao.test_limit is None:
        return None
    return evaluator.item_ids(benchmark, "test")[: cfg.rlao.test_limit]
