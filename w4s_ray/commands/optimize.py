"""`w4s optimize`: run W4S (or, with `--method adas|aflow`, ADAS or AFlow) on one benchmark.

ADAS/AFlow (`optimizers.run.run_search`) use the same preflight, evaluator pool, cache, rate
limit, budget and resume; their meta model is `optimizers.meta_agent` (else `meta_agent`), and
their run directory defaults to <run_dir>/optimize/<benchmark>-<method> (docs/BASELINES.md).

Writes a run directory (resolved config, every workflow, per-turn metrics, cost, the final
workflow, final.json with valid/test accuracy, report.md + curve.png); `--resume` continues a
killed, budget-stopped or executor-stopped run from its last completed turn (and refuses a
directory that holds no run). Before Ray starts: the run directory, the data, the meta-agent
(a missing checkpoint is one line) and the executor (one cheap preflight call; a bad key,
unknown model or provider is one line), so nothing is spent on a run that cannot work. The stage itself is `w4s_ray.api.optimize`.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from w4s_ray.cli import add_benchmarks_arg, add_config_args, add_out_arg, add_restart_args

    p = subparsers.add_parser(
        "optimize", help="optimize a workflow for one benchmark (W4S turns, then one test run)",
        description="Run the W4S loop on one benchmark: each turn the meta-agent proposes "
                    "workflows, they are evaluated on validation, the best is kept; at the end "
                    "the best workflow by validation accuracy is evaluated once on test.",
    )
    add_config_args(p)
    add_benchmarks_arg(p, "the benchmark to optimize (default: config `benchmark`)")
    p.add_argument("--method", choices=["w4s", "adas", "aflow"],
                   help="optimizer (default: config optimizers.method, i.e. w4s): adas / aflow "
                        "run those searches on the same evaluators, cache, rate limit and budget")
    p.add_argument("--turns", type=int, help="number of turns (default: rlao.turns); with "
                   "adas: generations (optimizers.adas.generations); with aflow: rounds after "
                   "round 1 (optimizers.aflow.max_rounds)")
    add_out_arg(p, "output directory (default: <run_dir>/optimize/<benchmark>; --run-dir is "
                "the older spelling)", "--run-dir")
    add_restart_args(p, "run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from w4s_ray import api
    from w4s_ray.cli import one_benchmark, show_progress
    from w4s_ray.executor.preflight import simulated_note

    cfg = args.cfg
    if args.method:
        cfg.optimizers.method = args.method
    if cfg.optimizers.method != "w4s":
        return _run_search(args, cfg)
    res = api.optimize(cfg, benchmark=one_benchmark(args, "optimize"), turns=args.turns,
                       run_dir=args.out, resume=args.resume, fresh=args.fresh,
                       progress=show_progress(args))
    test = res.test_accuracy
    print(f"{res.benchmark}: best '{res.best}' valid {res.valid_accuracy:.3f} "
          f"test {test if test is None else round(test, 3)} ${res.dollars:.4f} spent "
          f"(cache hits would have cost ${res.cached_dollars or 0.0:.4f})"
          f"{simulated_note(res.executor)} -> {res.report}")
    return 0


def _run_search(args: argparse.Namespace, cfg) -> int:
    """ADAS or AFlow: the same preflight, Ray session and evaluator pool as W4S."""
    from pathlib import Path

    from w4s_ray import storage
    from w4s_ray.benchmarks import check_benchmarks
    from w4s_ray.cli import one_benchmark
    from w4s_ray.errors import ConfigError

    name = check_benchmarks([one_benchmark(args, "optimize") or cfg.benchmark])[0]
    if args.turns is not None and args.turns < 0:
        raise ConfigError(f"--turns must be >= 0, got {args.turns}")

    where = args.out or storage.join(cfg.run_dir, "optimize", f"{name}-{cfg.optimizers.method}")
    with storage.staged(where, cfg.storage, what="--out" if args.out else "run_dir") as st:
        return _search_in(args, cfg, name, Path(st.path))


def _search_in(args: argparse.Namespace, cfg, name: str, run_dir) -> int:
    from w4s_ray.benchmarks import get_benchmark
    from w4s_ray.cli import show_progress
    from w4s_ray.errors import ConfigError
    from w4s_ray.executor.preflight import check_executor, simulated_note
    from w4s_ray.optimizers.run import (
        SearchDir,
        check_search_meta_agent,
        for_meta_agent,
        run_search,
    )
    from w4s_ray.rlao.runs import preflight
    from w4s_ray.runtime.evaluators import EvaluatorPool
    from w4s_ray.runtime.meta_agent_actor import make_hosted_meta_agent, stop
    from w4s_ray.runtime.ray_init import ray_session

    method = cfg.optimizers.method
    if not args.fresh:  # --fresh: discarded below, once every check has passed
        preflight(run_dir, cfg, args.resume, require_run=False)
    if args.resume and not (run_dir / "config.yaml").exists():
        raise ConfigError(f"--resume: {run_dir} holds no run to resume; check the directory, "
                          "or drop --resume to start one")
    bm = get_benchmark(name, data_dir=cfg.data_dir())
    bm.check_files()
    if method == "adas" and cfg.optimizers.adas.initial:
        from w4s_ray.baselines import get_baseline

        for b in cfg.optimizers.adas.initial:
            get_baseline(b)  # an unknown name: one line, before Ray
    meta_cfg = for_meta_agent(cfg)
    check_search_meta_agent(cfg)
    info = check_executor(cfg.executor)
    if args.fresh:
        SearchDir(run_dir).clear()
    with ray_session(cfg.ray):
        evaluator = agent = None
        try:
            evaluator = EvaluatorPool(cfg)
            agent = make_hosted_meta_agent(meta_cfg)
            final = run_search(cfg, method, bm, run_dir, evaluator, agent, resume=args.resume,
                               progress=show_progress(args), iterations=args.turns,
                               executor=info)
        finally:
            if agent is not None:
                stop(agent)
            if evaluator is not None:
                evaluator.close()
    test = final["test_accuracy"]
    print(f"{name} ({method}): best '{final['best']}' valid {final['valid_accuracy']:.3f} "
          f"test {test if test is None else round(test, 3)} ${final['dollars']:.4f} spent"
          f"{simulated_note(info)} -> {run_dir / 'report.md'}")
    return 0
